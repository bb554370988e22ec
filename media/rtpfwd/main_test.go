package rtpfwd

import (
	"os"
	"testing"
)

// benchDirs are temporary directories the benchmarks made.
var benchDirs []string

func TestMain(m *testing.M) {
	if os.Getenv(viewerHostEnv) != "" {
		os.Exit(viewerHost())
	}
	code := m.Run()
	for _, d := range benchDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}
