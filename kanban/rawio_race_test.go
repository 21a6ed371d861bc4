package kanban

import (
	"path/filepath"
	"testing"
	"time"
)

// TestWhileAloneHoldsOffNewConnections: while a guarded raw read runs, a
// connection that registers from another goroutine waits until the read has
// closed its file; and with a connection registered, the read is skipped.
func TestWhileAloneHoldsOffNewConnections(t *testing.T) {
	p := NewProcess()
	path := filepath.Join(t.TempDir(), "kanban.db")
	inRead, release := make(chan struct{}), make(chan struct{})
	registered := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- p.whileAlone(path, func() error {
			close(inRead)
			<-release
			return nil
		})
	}()
	<-inRead
	go func() {
		p.add(path, 1) // a connection about to open the file
		close(registered)
	}()
	select {
	case <-registered:
		t.Fatal("a connection registered while a raw read of the file was open")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	<-registered
	ran := false
	p.whileAlone(path, func() error { ran = true; return nil })
	if ran {
		t.Fatal("raw read ran while this process holds a connection")
	}
}
