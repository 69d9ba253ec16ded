package apikey

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"net/netip"
	"time"

	"github.com/keyward/keyward/internal/credential"
	"github.com/keyward/keyward/internal/events"
	"github.com/keyward/keyward/internal/ratelimit"
	"github.com/keyward/keyward/internal/storage"
)

// Result is what a successful Check reports besides the key.
type Result struct {
	// Rate is the rate-limit decision (zero Limit: the key has no rate).
	Rate ratelimit.Decision
	// Remaining is the quota left after this use; -1 when unlimited.
	Remaining int64
}

// CheckOptions qualify a verification.
type CheckOptions struct {
	// Peek reports the key's state without consuming a use of its rate or
	// quota, and without recording a use.
	Peek bool
	// Resource, when set, must be covered by the key's scopes.
	Resource string
}

// Verify checks a presented key for use from src and uses one request of
// its rate and quota: Authenticate and Charge in one step (one clock read),
// what the verify API does. On a refusal after the lookup, the key is
// returned with the error (its rate and refill say when to retry).
func (s *Service) Verify(ctx context.Context, plaintext string, src netip.Addr) (*Key, Result, error) {
	k, err := s.Lookup(ctx, plaintext)
	if err != nil {
		return nil, Result{}, err
	}
	now := s.opts.Now()
	if err := k.usable(now, src); err != nil {
		return k, Result{Remaining: -1}, err
	}
	res, err := s.charge(ctx, k, src, now)
	return k, res, err
}

// Authenticate checks a presented key for use from src without using it:
// format and checksum, lookup, revocation (and the end of a grace period),
// expiry and source address. It spends no rate or quota and records no
// use: call Charge once the request the key came with is authorised, so a
// request refused on the way costs the key nothing.
func (s *Service) Authenticate(ctx context.Context, plaintext string, src netip.Addr) (*Key, error) {
	k, err := s.Lookup(ctx, plaintext)
	if err != nil {
		return nil, err
	}
	if err := k.usable(s.opts.Now(), src); err != nil {
		return nil, err
	}
	return k, nil
}

// Charge uses one request of k's rate, then one unit of its quota, and
// records the use from src. Authenticate (or Check) has checked the rest.
// Over the rate is ErrRateLimited (Result.Rate says when to retry) and
// spends no quota; no quota left is ErrUsageExceeded; either records no
// use.
func (s *Service) Charge(ctx context.Context, k *Key, src netip.Addr) (Result, error) {
	return s.charge(ctx, k, src, s.opts.Now())
}

// Lookup finds the key a plaintext names. The format and checksum are
// checked before anything else, so a typo costs no lookup. It checks
// nothing about the key's state: call Authenticate or Check.
func (s *Service) Lookup(ctx context.Context, plaintext string) (*Key, error) {
	if err := credential.ParseType(plaintext, credential.APIKey); err != nil {
		return nil, ErrMalformed
	}
	hash, ok := s.hashKey(plaintext)
	if !ok {
		return nil, ErrSealed
	}
	if k, ok := s.cache.Load(hash); ok {
		return k.(*Key), nil
	}
	return s.load(ctx, hash)
}

// usable checks the key's own state for a use from src at now: revocation
// (and the end of a grace period), expiry, source address.
func (k *Key) usable(now time.Time, src netip.Addr) error {
	switch {
	case k.Revoked(now):
		return ErrRevoked
	case k.Expired(now):
		return ErrExpired
	case !k.DisabledAt.IsZero():
		return ErrDisabled
	case len(k.CIDRs) > 0 && !addrAllowed(k.CIDRs, src):
		return ErrSourceDenied
	}
	return nil
}

// Check decides whether k may be used now from src: revocation (and the end
// of a grace period), expiry, source address, scope, then rate and quota,
// each consumed only when everything before it passed.
func (s *Service) Check(ctx context.Context, k *Key, src netip.Addr, opts CheckOptions) (Result, error) {
	now := s.opts.Now()
	res := Result{Remaining: -1}
	if err := k.usable(now, src); err != nil {
		return res, err
	}
	if opts.Resource != "" && !k.Allows(opts.Resource) {
		return res, ErrScopeDenied
	}
	if opts.Peek {
		res.Rate = s.limiter.Peek(k.CounterID, k.Rate)
		if k.Quota > 0 {
			rem, err := s.remaining(ctx, k, now)
			if err != nil {
				return res, err
			}
			res.Remaining = rem
		}
		return res, nil
	}
	return s.charge(ctx, k, src, now)
}

// charge is Charge at now.
func (s *Service) charge(ctx context.Context, k *Key, src netip.Addr, now time.Time) (Result, error) {
	res := Result{Remaining: -1}
	if k.Quota > 0 && k.use != nil && now.UnixNano() < k.use.exhaustedUntil.Load() {
		return res, ErrUsageExceeded
	}
	res.Rate = s.limiter.AllowAt(k.CounterID, k.Rate, now)
	if !res.Rate.Allowed {
		return res, ErrRateLimited
	}
	if k.Quota > 0 {
		rem, err := s.consume(ctx, k, now)
		if err != nil {
			return res, err
		}
		res.Remaining = rem
	}
	s.recordUse(k, now, src)
	return res, nil
}

func addrAllowed(cidrs []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, c := range cidrs {
		if c.Contains(a) {
			return true
		}
	}
	return false
}

// consume counts one use against the key's quota in storage, refilling
// first when a new period began.
func (s *Service) consume(ctx context.Context, k *Key, now time.Time) (int64, error) {
	for attempt := 0; ; attempt++ {
		rem, ok, err := s.decrement(ctx, k, now)
		if err != nil || ok {
			return rem, err
		}
		// Nothing was counted: exhausted, or the key changed (revoked or
		// rotated on another node). Storage says which.
		fresh, err := s.loadID(ctx, k.ID)
		if err != nil {
			return 0, err
		}
		switch {
		case fresh.Revoked(now):
			s.evictID(k.ID)
			return 0, ErrRevoked
		case fresh.CounterID != k.CounterID:
			s.evictID(k.ID)
			if attempt == 0 {
				k = fresh
				continue
			}
		case k.use != nil:
			// Exhausted: nothing can add to the counter before the next
			// refill (a rotation moves the counter and evicts the key), so
			// the cached key answers alone until then.
			until := int64(math.MaxInt64)
			if next := k.NextRefill(now); !next.IsZero() {
				until = next.UnixNano()
			}
			k.use.exhaustedUntil.Store(until)
		}
		return 0, ErrUsageExceeded
	}
}

// remaining reads the quota left without consuming (applying a due refill
// in the answer only).
func (s *Service) remaining(ctx context.Context, k *Key, now time.Time) (int64, error) {
	var rem, refilled, amount int64
	err := s.store.Read(ctx, func(tx storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT remaining, refilled_at, refill_amount FROM api_keys WHERE id = $1`, k.CounterID).Scan(&rem, &refilled, &amount)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, err
	}
	if k.Refill.Period != "" && refilled < periodStart(k.Refill.Period, now).UnixNano() {
		rem = amount
	}
	return rem, nil
}

// load reads a key by hash and caches it.
func (s *Service) load(ctx context.Context, hash [32]byte) (*Key, error) {
	gen := s.gen.Load()
	k, err := s.read(ctx, `k.hash = $1`, hash[:])
	if err != nil {
		return nil, err
	}
	k.use = &usage{}
	s.put(hash, k, gen)
	return k, nil
}

// loadID reads a key by id, uncached.
func (s *Service) loadID(ctx context.Context, id string) (*Key, error) {
	k, err := s.read(ctx, `k.id = $1`, id)
	if err != nil {
		return nil, err
	}
	s.overlayUse(k)
	return k, nil
}

// read reads the one key where cond (on arg) holds, with its audit HMAC.
func (s *Service) read(ctx context.Context, cond string, arg any) (*Key, error) {
	var k *Key
	err := s.store.Read(ctx, func(tx storage.Tx) error {
		var err error
		_, k, err = scanKey(tx.QueryRow(ctx, `SELECT `+columns+from+`WHERE `+cond, arg))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	k.IDHMAC = s.idHMAC(k.ID)
	return k, nil
}

// put caches k unless an eviction happened since gen was read.
func (s *Service) put(hash [32]byte, k *Key, gen uint64) {
	if s.OnFill != nil {
		s.OnFill(k)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen.Load() != gen {
		return
	}
	if len(s.byID) >= s.opts.CacheSize {
		// Evict an arbitrary tenth: map order is random enough, and a
		// reload costs one indexed read. Pending last-use times stay queued.
		n := 0
		for id, h := range s.byID {
			s.cache.Delete(h)
			delete(s.byID, id)
			if n++; n >= s.opts.CacheSize/10+1 {
				break
			}
		}
	}
	s.cache.Store(hash, k)
	s.byID[k.ID] = hash
}

// evictID drops a key from this node's cache.
func (s *Service) evictID(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen.Add(1)
	if h, ok := s.byID[id]; ok {
		s.cache.Delete(h)
		delete(s.byID, id)
	}
}

// Purge empties the cache (on seal).
func (s *Service) Purge() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen.Add(1)
	s.cache.Clear()
	clear(s.byID)
}

// HandleEvent applies an event from another node (or this one).
func (s *Service) HandleEvent(e events.Event) {
	if e.Kind == EventRevoke || e.Kind == EventChange {
		s.evictID(e.Key)
	}
}

// recordUse notes a use in memory; Flush writes it. A key is queued once
// per flush however often it is used; a use from the same address as the
// last allocates nothing.
func (s *Service) recordUse(k *Key, now time.Time, src netip.Addr) {
	u := k.use
	if u == nil {
		return
	}
	// Stores only when the time moved by a millisecond: a hot key's cache
	// line is then mostly read, not bounced between cores.
	if ns := now.UnixNano(); ns-u.at.Load() >= int64(time.Millisecond) {
		u.at.Store(ns)
	}
	if p := u.addr.Load(); p == nil || *p != src {
		a := src
		u.addr.Store(&a)
	}
	if !u.dirty.Load() && u.dirty.CompareAndSwap(false, true) {
		s.queue(k)
	}
}

// overlayUse shows a cached key's unwritten last use on a key read from
// storage.
func (s *Service) overlayUse(k *Key) {
	s.dirtyMu.Lock()
	c := s.dirty[k.ID]
	s.dirtyMu.Unlock()
	if c == nil {
		s.mu.Lock()
		h, ok := s.byID[k.ID]
		s.mu.Unlock()
		if !ok {
			return
		}
		v, ok := s.cache.Load(h)
		if !ok {
			return
		}
		c = v.(*Key)
	}
	if c.use == nil {
		return
	}
	if at := c.use.at.Load(); at > 0 && at > nanosOrZero(k.LastUsedAt) {
		k.LastUsedAt = time.Unix(0, at).UTC()
		if p := c.use.addr.Load(); p != nil {
			k.LastUsedAddr = addrString(*p)
		}
	}
}

// queue puts k in the next flush. A key evicted and reloaded has a new
// *Key; the one queued last holds the latest use and replaces the other,
// which may queue itself again.
func (s *Service) queue(k *Key) {
	s.dirtyMu.Lock()
	if prev := s.dirty[k.ID]; prev != nil && prev != k {
		prev.use.dirty.Store(false)
	}
	s.dirty[k.ID] = k
	s.dirtyMu.Unlock()
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Flush writes the queued last uses in one transaction.
func (s *Service) Flush(ctx context.Context) error {
	s.dirtyMu.Lock()
	batch := s.dirty
	s.dirty = map[string]*Key{}
	s.dirtyMu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	type row struct {
		id   string
		at   int64
		addr string
	}
	rows := make([]row, 0, len(batch))
	for _, k := range batch {
		k.use.dirty.Store(false)
		r := row{id: k.ID, at: k.use.at.Load()}
		if p := k.use.addr.Load(); p != nil {
			r.addr = addrString(*p)
		}
		rows = append(rows, r)
	}
	type seen struct{ id, network string }
	var fresh []seen
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		fresh = fresh[:0]
		for _, r := range rows {
			if _, err := tx.Exec(ctx, `UPDATE api_keys SET last_used_at = $1, last_used_addr = $2 WHERE id = $3 AND last_used_at < $1`, r.at, r.addr, r.id); err != nil {
				return err
			}
			if s.opts.OnNewNetwork == nil {
				continue
			}
			network := NetworkOf(r.addr)
			if network == "" {
				continue
			}
			isNew, hadOthers, err := recordNetwork(ctx, tx, r.id, network, r.at)
			if err != nil {
				return err
			}
			if isNew && hadOthers {
				fresh = append(fresh, seen{r.id, network})
			}
		}
		return nil
	})
	if err != nil {
		// Queue them again for the next flush.
		for _, k := range batch {
			s.recordRequeue(k)
		}
		return err
	}
	for _, f := range fresh {
		s.opts.OnNewNetwork(f.id, f.network, s.opts.Now())
	}
	return nil
}

// NetworkMemory is how long a key's source network is remembered: one
// unused for longer is new again.
const NetworkMemory = 30 * 24 * time.Hour

// NetworkOf is the network an address is judged by: its IPv4 /24 or its
// IPv6 /48 ("" for no valid address).
func NetworkOf(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return ""
	}
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

// recordNetwork notes that key id was used from network at at; isNew when
// it had not been (in NetworkMemory), hadOthers when other networks were.
func recordNetwork(ctx context.Context, tx storage.Tx, id, network string, at int64) (isNew, hadOthers bool, err error) {
	res, err := tx.Exec(ctx, `UPDATE api_key_networks SET last_seen = $1 WHERE key_id = $2 AND network = $3 AND last_seen >= $4`,
		at, id, network, at-int64(NetworkMemory))
	if err != nil {
		return false, false, err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return false, false, nil
	}
	var others int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM api_key_networks WHERE key_id = $1 AND network <> $2 AND last_seen >= $3`,
		id, network, at-int64(NetworkMemory)).Scan(&others); err != nil {
		return false, false, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO api_key_networks (key_id, network, first_seen, last_seen) VALUES ($1, $2, $3, $3)
		ON CONFLICT (key_id, network) DO UPDATE SET first_seen = excluded.first_seen, last_seen = excluded.last_seen`, id, network, at); err != nil {
		return false, false, err
	}
	return true, others > 0, nil
}

func (s *Service) recordRequeue(k *Key) {
	if k.use.dirty.CompareAndSwap(false, true) {
		s.queue(k)
	}
}

// Run flushes last uses every flush interval until ctx is done. onErr,
// when set, hears about failed flushes. Call Flush once more after Run
// returns and before storage closes.
func (s *Service) Run(ctx context.Context, onErr func(error)) {
	t := time.NewTicker(s.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.Flush(ctx); err != nil && onErr != nil {
			onErr(err)
		}
	}
}
