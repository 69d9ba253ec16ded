package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// ErrAddressBlocked: the upstream resolved to an address integrations may
// reach only with allow_private.
var ErrAddressBlocked = errors.New("the upstream resolved to a loopback, private or otherwise internal address; the integration needs allow_private to reach it")

// blockedPrefixes are ranges no public API lives in, beyond what netip's
// predicates name.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),  // documentation
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"), // reserved, broadcast
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("100::/64"), // discard
}

// embedded4 are IPv6 ranges that carry an IPv4 address a router may reach:
// NAT64 (the last 32 bits) and 6to4 (bits 16 to 48).
var (
	nat64   = netip.MustParsePrefix("64:ff9b::/96")
	sixToF4 = netip.MustParsePrefix("2002::/16")
)

// Blocked reports whether a is an address an integration reaches only with
// allow_private: loopback, private (RFC 1918, fc00::/7), link-local,
// unspecified, multicast, carrier-grade NAT, reserved and documentation
// ranges, and IPv6 forms that embed such an IPv4 address.
func Blocked(a netip.Addr) bool {
	a = a.Unmap()
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64.Contains(a):
			return Blocked(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToF4.Contains(a):
			return Blocked(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || !a.IsValid() {
		return true
	}
	for _, p := range blockedPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// guard refuses, at connect time, a socket to a blocked address. It runs
// after DNS resolution, on the very address dialled, so a name that
// resolves to a public address at one moment and to 127.0.0.1 the next
// (DNS rebinding) cannot slip through.
func guard(_ context.Context, network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("gateway: dial %s %q: %w", network, address, ErrAddressBlocked)
	}
	if Blocked(ap.Addr()) {
		return ErrAddressBlocked
	}
	return nil
}

// TransportOptions tune the upstream connection pools (client.go).
type TransportOptions struct {
	// RootCAs, when set, replaces the system roots (tests).
	RootCAs *x509.CertPool
	// MaxIdlePerHost bounds idle keep-alive connections per upstream
	// (default 256).
	MaxIdlePerHost int
	// MaxSessions bounds the WebSocket sessions open at once on the node
	// (default DefaultMaxSessions); a handshake past it is refused with
	// ErrTooManySessions before the upstream is called.
	MaxSessions int
	// MaxSessionsPerCaller bounds the sessions one caller (principal) holds
	// open at once on the node (default DefaultMaxSessionsPerCaller).
	MaxSessionsPerCaller int
}

// Default bounds on open WebSocket sessions: on a node, and of one caller.
const (
	DefaultMaxSessions          = 10000
	DefaultMaxSessionsPerCaller = 100
)
