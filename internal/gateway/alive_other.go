//go:build !linux

package gateway

import "net"

// alive cannot peek at sockets here: a pooled connection is trusted when
// it has been idle for less than replayableIdleLimit.
func alive(net.Conn) bool { return true }
