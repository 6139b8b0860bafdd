//go:build amd64 && !purego

#include "textflag.h"

// func dot4(qs *float32, dim int, blk *float32, nblk int, out *float32, ostride int)
//
// For the 4 queries at qs (rows of dim floats) and nblk consecutive packed
// blocks at blk ([nblk][dim][8]), writes query i's score for item l of
// block b to out[i*ostride + b*8 + l]. Blocks go three at a time (a 4x24
// tile: 12 accumulators, so the fused multiply-adds of the two FMA units
// never wait on each other), then one at a time. Every score is the same
// chain of fused multiply-adds over d in index order, whatever the tile.
// dim must be positive (the Go callers check it).
TEXT ·dot4(SB), NOSPLIT, $0-48
	MOVQ qs+0(FP), R8
	MOVQ dim+8(FP), DX
	MOVQ blk+16(FP), SI
	MOVQ nblk+24(FP), CX
	MOVQ out+32(FP), DI
	MOVQ ostride+40(FP), R14
	SHLQ $2, R14           // output row stride in bytes
	LEAQ (R8)(DX*4), R9    // query rows 1..3
	LEAQ (R9)(DX*4), R10
	LEAQ (R10)(DX*4), R11
	MOVQ DX, BX
	SHLQ $5, BX            // bytes per packed block

three:
	CMPQ CX, $3
	JLT  one
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	MOVQ SI, R12
	XORQ R13, R13
	MOVQ DX, AX

loop3:
	VMOVUPS      (R12), Y12
	VMOVUPS      (R12)(BX*1), Y13
	VMOVUPS      (R12)(BX*2), Y14
	VBROADCASTSS (R8)(R13*1), Y15
	VFMADD231PS  Y12, Y15, Y0
	VFMADD231PS  Y13, Y15, Y1
	VFMADD231PS  Y14, Y15, Y2
	VBROADCASTSS (R9)(R13*1), Y15
	VFMADD231PS  Y12, Y15, Y3
	VFMADD231PS  Y13, Y15, Y4
	VFMADD231PS  Y14, Y15, Y5
	VBROADCASTSS (R10)(R13*1), Y15
	VFMADD231PS  Y12, Y15, Y6
	VFMADD231PS  Y13, Y15, Y7
	VFMADD231PS  Y14, Y15, Y8
	VBROADCASTSS (R11)(R13*1), Y15
	VFMADD231PS  Y12, Y15, Y9
	VFMADD231PS  Y13, Y15, Y10
	VFMADD231PS  Y14, Y15, Y11
	ADDQ $32, R12
	ADDQ $4, R13
	DECQ AX
	JNZ  loop3

	LEAQ    (DI)(R14*2), R15
	VMOVUPS Y0, (DI)
	VMOVUPS Y3, (DI)(R14*1)
	VMOVUPS Y6, (R15)
	VMOVUPS Y9, (R15)(R14*1)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y4, 32(DI)(R14*1)
	VMOVUPS Y7, 32(R15)
	VMOVUPS Y10, 32(R15)(R14*1)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y5, 64(DI)(R14*1)
	VMOVUPS Y8, 64(R15)
	VMOVUPS Y11, 64(R15)(R14*1)
	ADDQ $96, DI
	LEAQ (SI)(BX*2), SI
	ADDQ BX, SI
	SUBQ $3, CX
	JMP  three

one:
	TESTQ CX, CX
	JLE   done
	VXORPS Y0, Y0, Y0
	VXORPS Y3, Y3, Y3
	VXORPS Y6, Y6, Y6
	VXORPS Y9, Y9, Y9
	MOVQ SI, R12
	XORQ R13, R13
	MOVQ DX, AX

loop1:
	VMOVUPS      (R12), Y12
	VBROADCASTSS (R8)(R13*1), Y15
	VFMADD231PS  Y12, Y15, Y0
	VBROADCASTSS (R9)(R13*1), Y15
	VFMADD231PS  Y12, Y15, Y3
	VBROADCASTSS (R10)(R13*1), Y15
	VFMADD231PS  Y12, Y15, Y6
	VBROADCASTSS (R11)(R13*1), Y15
	VFMADD231PS  Y12, Y15, Y9
	ADDQ $32, R12
	ADDQ $4, R13
	DECQ AX
	JNZ  loop1

	LEAQ    (DI)(R14*2), R15
	VMOVUPS Y0, (DI)
	VMOVUPS Y3, (DI)(R14*1)
	VMOVUPS Y6, (R15)
	VMOVUPS Y9, (R15)(R14*1)
	ADDQ $32, DI
	ADDQ BX, SI
	DECQ CX
	JMP  one

done:
	VZEROUPPER
	RET
