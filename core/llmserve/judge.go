package llmserve

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/llmwire"
)

// The judge: a prompt built by llmwire.BuildJudgePrompt is answered with the
// world's graded relevance of (query, item) from qrels.parquet (0 when the
// pair is not there), moved one grade up or down with probability
// Options.JudgeNoise, deterministically per (server seed, request seed,
// query, item). A real LLM judge reads the text; this one knows the truth
// and errs at a known rate, so the gate's measurements against truth say
// what a judge of that quality buys.

// DefaultJudgeNoise is the judge's error rate when the runner serves a world.
const DefaultJudgeNoise = 0.1

// judgeGrades holds qrels per query, loaded on first use.
type judgeGrades struct {
	mu    sync.Mutex
	path  string
	db    *sql.DB
	byQry map[string]map[string]int
}

func (j *judgeGrades) grade(ctx context.Context, query, item string) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if g, ok := j.byQry[query]; ok {
		return g[item], nil
	}
	if j.path == "" {
		return 0, fmt.Errorf("this world has no qrels.parquet to judge from")
	}
	if j.db == nil {
		db, err := duck.Open(ctx, 1)
		if err != nil {
			return 0, err
		}
		if _, err := db.ExecContext(ctx, "CREATE TABLE qrels AS SELECT query, item_id, grade::INTEGER AS grade FROM "+duck.ReadParquet(j.path)+" ORDER BY query"); err != nil {
			db.Close()
			return 0, fmt.Errorf("read %s: %w", j.path, err)
		}
		j.db, j.byQry = db, map[string]map[string]int{}
	}
	rows, err := j.db.QueryContext(ctx, "SELECT item_id, grade FROM qrels WHERE query = ?", query)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	g := map[string]int{}
	for rows.Next() {
		var it string
		var gr int
		if err := rows.Scan(&it, &gr); err != nil {
			return 0, err
		}
		g[it] = gr
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	j.byQry[query] = g
	return g[item], nil
}

func (j *judgeGrades) close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.db != nil {
		j.db.Close()
		j.db = nil
	}
}

// attachQrels points the judge at worldDir's qrels.parquet when it exists.
func (o *Oracle) attachQrels(worldDir string) {
	o.judge = &judgeGrades{}
	if p := dataset.TablePath(worldDir, dataset.QrelsTable); fileExists(p) {
		o.judge.path = p
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Close releases the judge's qrels database.
func (o *Oracle) Close() {
	if o.judge != nil {
		o.judge.close()
	}
}

// Judge returns the served grade of item for query (see the comment above).
func (s *Server) Judge(ctx context.Context, query, item string, reqSeed int64) (int, error) {
	if s.o.judge == nil {
		return 0, fmt.Errorf("this oracle was not loaded from a world directory; it cannot judge")
	}
	g, err := s.o.judge.grade(ctx, query, item)
	if err != nil {
		return 0, err
	}
	h := fnv.New64a()
	h.Write([]byte(query))
	h.Write([]byte{0})
	h.Write([]byte(item))
	rng := rand.New(rand.NewPCG(s.opt.Seed^uint64(reqSeed), h.Sum64()))
	if rng.Float64() < s.opt.JudgeNoise {
		if g == 0 || (g < 3 && rng.IntN(2) == 0) {
			g++
		} else {
			g--
		}
	}
	return g, nil
}

func (s *Server) judgeChat(w http.ResponseWriter, r *http.Request, start time.Time, req llmwire.ChatRequest, query, item string) {
	var seed int64
	if req.Seed != nil {
		seed = *req.Seed
	}
	g, err := s.Judge(r.Context(), query, item, seed)
	if err != nil {
		s.fail(w, r, start, http.StatusInternalServerError, "judge: "+err.Error())
		return
	}
	b, _ := json.Marshal(llmwire.JudgeAnswer{Grade: g})
	content := string(b)
	model := req.Model
	if model == "" {
		model = ModelID
	}
	h := fnv.New64a()
	h.Write([]byte(query + "\x00" + item))
	writeJSON(w, http.StatusOK, llmwire.ChatResponse{
		ID: fmt.Sprintf("chatcmpl-%016x", h.Sum64()), Object: "chat.completion", Created: time.Now().Unix(), Model: model,
		Choices: []llmwire.Choice{{Index: 0, Message: llmwire.Message{Role: "assistant", Content: content}, FinishReason: "stop"}},
		Usage:   &llmwire.Usage{PromptTokens: approxTokens(req.Messages[1].Content), CompletionTokens: approxTokens(content), TotalTokens: approxTokens(req.Messages[1].Content) + approxTokens(content)},
	})
	s.log.Debug("llm-serve judge", "query", query, "item", item, "grade", g, "ms", time.Since(start).Milliseconds())
}
