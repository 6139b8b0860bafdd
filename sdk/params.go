package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Validator is implemented by parameter structs that check themselves after
// decoding.
type Validator interface {
	Validate() error
}

// DecodeParams decodes a params object into dst strictly: unknown fields and
// wrong types are errors that name the field. Fields absent from raw keep the
// values dst already holds, so set defaults before calling. If dst implements
// Validator, Validate runs last.
func DecodeParams(raw json.RawMessage, dst any) error {
	if len(bytes.TrimSpace(raw)) != 0 && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(dst); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return fmt.Errorf("params: field %q: expected %s, got JSON %s", te.Field, te.Type, te.Value)
			}
			return fmt.Errorf("params: %w", err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return fmt.Errorf("params: trailing data after the params object")
		}
	}
	if v, ok := dst.(Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("params: %w", err)
		}
	}
	return nil
}
