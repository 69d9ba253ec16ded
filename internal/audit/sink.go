package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

// The sink is fed from the stored log, not from Append's arguments: a
// tailer goroutine reads entries committed after the last one it saw (seq
// order is commit order, because every append holds the head row lock until
// it commits) and forwards the ones this Log wrote, as JSON lines, to a
// buffered channel drained by a writer goroutine. So the sink sees an
// AppendTx entry only if its transaction committed, never sees an entry
// twice, never sees other nodes' entries, and a stuck sink only fills the
// buffer: further lines are dropped and counted, appends never wait.

const (
	// sinkPoll is how often the tailer looks for committed AppendTx entries
	// while some are outstanding (it cannot see the caller's commit).
	sinkPoll = 100 * time.Millisecond
	// sinkPage is how many blocks (up to 64 entries each) one tailer query
	// reads.
	sinkPage = 16
	// sinkForget is how long an expected entry is waited for before it is
	// taken to have been rolled back.
	sinkForget = 5 * time.Minute
	// sinkFlushTimeout bounds how long Close waits for a slow sink.
	sinkFlushTimeout = 10 * time.Second
)

// expected is an entry this Log wrote that the tailer has not seen yet.
// prev is its prev hash, which audit_blocks holds only as the hash before.
type expected struct {
	at     time.Time
	fromTx bool
	prev   []byte
}

type sinkFeed struct {
	l       *Log
	lines   chan []byte
	dropped atomic.Uint64

	mu   sync.Mutex
	mine map[[HashSize]byte]expected // entries this Log wrote, not yet forwarded
	txs  int                         // how many of them came from AppendTx

	cursor int64 // last seq the tailer read (tailer goroutine only)

	wake      chan struct{}
	quit      chan struct{}
	tailDone  chan struct{}
	writeDone chan struct{}
}

func newSinkFeed(l *Log, headSeq int64) *sinkFeed {
	s := &sinkFeed{
		l:         l,
		lines:     make(chan []byte, l.opts.SinkBuffer),
		mine:      map[[HashSize]byte]expected{},
		cursor:    headSeq,
		wake:      make(chan struct{}, 1),
		quit:      make(chan struct{}),
		tailDone:  make(chan struct{}),
		writeDone: make(chan struct{}),
	}
	go s.tail()
	go s.write()
	return s
}

// expect records that this Log wrote rows (called before they commit);
// fromTx marks AppendTx entries, whose commit the tailer must poll for.
func (s *sinkFeed) expect(rows []*row, fromTx bool) {
	now := time.Now()
	s.mu.Lock()
	for _, r := range rows {
		s.mine[[HashSize]byte(r.hash)] = expected{at: now, fromTx: fromTx, prev: r.prevHash}
		if fromTx {
			s.txs++
		}
	}
	s.mu.Unlock()
	if fromTx {
		s.poke()
	}
}

// forget undoes expect for rows whose transaction failed.
func (s *sinkFeed) forget(rows []*row) {
	s.mu.Lock()
	for _, r := range rows {
		h := [HashSize]byte(r.hash)
		if x, ok := s.mine[h]; ok {
			delete(s.mine, h)
			if x.fromTx {
				s.txs--
			}
		}
	}
	s.mu.Unlock()
}

func (s *sinkFeed) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sinkFeed) report(err error) {
	if s.l.opts.OnSinkError != nil {
		s.l.opts.OnSinkError(err)
	}
}

// tail forwards committed entries until close, then catches up once more.
func (s *sinkFeed) tail() {
	defer close(s.tailDone)
	defer close(s.lines)
	for {
		var poll <-chan time.Time
		s.mu.Lock()
		if s.txs > 0 {
			poll = time.After(sinkPoll)
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-poll:
		case <-s.quit:
			s.catchUp()
			return
		}
		s.catchUp()
	}
}

// catchUp reads every entry after the cursor and forwards this Log's.
func (s *sinkFeed) catchUp() {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	for {
		n, err := s.readPage(ctx)
		if err != nil {
			s.report(fmt.Errorf("audit: sink: read entries after %d: %w", s.cursor, err))
			return
		}
		if n < sinkPage {
			break
		}
	}
	// Forget AppendTx entries whose transaction must have rolled back.
	s.mu.Lock()
	for h, x := range s.mine {
		if time.Since(x.at) > sinkForget {
			delete(s.mine, h)
			if x.fromTx {
				s.txs--
			}
		}
	}
	s.mu.Unlock()
}

func (s *sinkFeed) readPage(ctx context.Context) (int, error) {
	var page []storedBlock
	err := s.l.st.Read(ctx, func(tx storage.Tx) (err error) {
		page, err = blocksAfter(ctx, tx, s.cursor, sinkPage, false)
		return err
	})
	if err != nil {
		return 0, err
	}
	var es []row
	for i := range page {
		b := &page[i]
		cursor := s.cursor
		s.cursor = b.seq
		if es, err = b.entries(es); err != nil {
			s.report(fmt.Errorf("audit: sink: entry %d: %w", b.first(), err))
			continue
		}
		for j := range es {
			r := &es[j]
			if r.seq <= cursor {
				continue
			}
			s.mu.Lock()
			x, ok := s.mine[[HashSize]byte(r.hash)]
			if ok {
				delete(s.mine, [HashSize]byte(r.hash))
				if x.fromTx {
					s.txs--
				}
			}
			s.mu.Unlock()
			if ok {
				r.prevHash = x.prev
				s.forward(r)
			}
		}
	}
	return len(page), nil
}

// forward queues r's JSON line. A detail that does not decode (edited in
// the database) is reported and skipped.
func (s *sinkFeed) forward(r *row) {
	d, err := decodeDetail(r.detail)
	if err != nil {
		s.report(fmt.Errorf("audit: sink: entry %d: %w", r.seq, err))
		return
	}
	b, err := json.Marshal(r.entry(d))
	if err != nil {
		s.report(fmt.Errorf("audit: sink: entry %d: %w", r.seq, err))
		return
	}
	b = append(b, '\n')
	select {
	case s.lines <- b:
	default:
		s.dropped.Add(1)
	}
}

// write copies lines to the sink.
func (s *sinkFeed) write() {
	defer close(s.writeDone)
	for b := range s.lines {
		if _, err := s.l.opts.Sink.Write(b); err != nil {
			s.report(fmt.Errorf("audit: sink: write: %w", err))
		}
	}
}

// close stops the tailer after a last catch-up and waits for the writer.
func (s *sinkFeed) close() error {
	close(s.quit)
	<-s.tailDone
	select {
	case <-s.writeDone:
		return nil
	case <-time.After(sinkFlushTimeout):
		return fmt.Errorf("audit: sink: still writing after %s; %d lines not delivered", sinkFlushTimeout, len(s.lines))
	}
}
