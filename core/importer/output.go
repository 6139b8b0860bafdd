package importer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cropsdev/crops/core/dataset"
)

// RunOptions tunes Run.
type RunOptions struct {
	// Force replaces a non-empty output directory; without it Run refuses.
	Force bool
	// Validate, when set, checks the staged dataset before it is moved into
	// place; an error keeps the old --out untouched.
	Validate func(ctx context.Context, dir string) error
}

// Run imports into a temporary directory beside out and renames it into
// place only when the import succeeded, produced at least one search
// request and (when opts.Validate is set) validates. A failed import leaves
// out exactly as it was: never a mixed or partial dataset.
func Run(ctx context.Context, im Importer, args map[string]string, out string, opts RunOptions) (*Result, error) {
	var res *Result
	err := WriteDirAtomic(out, opts.Force, func(tmp string) error {
		r, err := im.Import(ctx, args, tmp)
		if err != nil {
			return err
		}
		m, err := dataset.ReadManifest(tmp)
		if err != nil {
			return fmt.Errorf("import %s: %w", im.Name(), err)
		}
		if m.Split.TrainRequests+m.Split.TestRequests == 0 {
			var in []string
			for _, f := range im.Flags() {
				if v := args[f.Name]; v != "" {
					in = append(in, "--"+f.Name+" "+v)
				}
			}
			return fmt.Errorf("import %s: the input (%s) holds no search request (%s): check that the files are the ones the importer expects (crops data import %s --help)",
				im.Name(), strings.Join(in, " "), r.summary(), im.Name())
		}
		if opts.Validate != nil {
			if err := opts.Validate(ctx, tmp); err != nil {
				return err
			}
		}
		r.Dir = out
		res = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// summary is the report's counts on one line, for errors.
func (r *Result) summary() string {
	s := ""
	for i, c := range r.Counts {
		if i == 6 {
			s += ", ..."
			break
		}
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s: %d", c.Name, c.N)
	}
	return s
}

// WriteDirAtomic runs write on a fresh temporary directory beside out and,
// when it succeeds, puts that directory in place of out. out must be absent
// or an empty directory unless force is set; a non-empty out is replaced as
// a whole (moved aside, then removed), never merged. On error nothing under
// out changes and the temporary directory is removed.
func WriteDirAtomic(out string, force bool, write func(tmp string) error) error {
	if out == "" {
		return errors.New("--out DIR is required")
	}
	out = filepath.Clean(out)
	empty, exists, err := dirState(out)
	if err != nil {
		return err
	}
	if exists && !empty && !force {
		return fmt.Errorf("--out %s is not empty: refusing to write a dataset over existing files (pass --force to replace the whole directory, or choose another --out)", out)
	}
	parent := filepath.Dir(out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return fmt.Errorf("create a temporary directory beside %s: %w", out, err)
	}
	if err := write(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if exists {
		// Rename cannot replace a non-empty directory: move the old one
		// aside first, then drop it once the new one is in place.
		old, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".old-")
		if err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("create a temporary directory beside %s: %w", out, err)
		}
		aside := filepath.Join(old, "d")
		if err := os.Rename(out, aside); err != nil {
			os.RemoveAll(tmp)
			os.RemoveAll(old)
			return fmt.Errorf("move the old %s aside: %w", out, err)
		}
		if err := os.Rename(tmp, out); err != nil {
			_ = os.Rename(aside, out) // put the old dataset back
			os.RemoveAll(tmp)
			os.RemoveAll(old)
			return fmt.Errorf("move the new dataset to %s: %w", out, err)
		}
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("remove the replaced dataset %s: %w", old, err)
		}
		return nil
	}
	if err := os.Rename(tmp, out); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("move the new dataset to %s: %w", out, err)
	}
	return nil
}

// dirState says whether path exists and, if so, whether it is an empty
// directory. A path that is a file is an error.
func dirState(path string) (empty, exists bool, err error) {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return true, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("--out %s: %w", path, err)
	}
	if !st.IsDir() {
		return false, true, fmt.Errorf("--out %s is a file, not a directory", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return false, true, fmt.Errorf("--out %s: %w", path, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && len(names) == 0 {
		return true, true, nil
	}
	return len(names) == 0, true, nil
}
