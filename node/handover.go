package node

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryhq/ferry"
)

// Handover, as HAProxy and Envoy do it: a new node binary started with
// Takeover connects to the running node and POSTs /v1/handover. The old
// node takes the connection over (no HTTP answer), and sends a 4-byte
// big-endian length with the duplicates of its listening sockets attached
// (SCM_RIGHTS, one per environment), then that many bytes of JSON: the
// environments' states, in the sockets' order. The new node starts a
// runtime per environment on the socket it got, applies the last applied
// spec (its own replicas, started beside the old ones: the old node's runc
// containers are not adopted) and waits until they are ready; only then
// do its balancers accept on the sockets, beside the old node's (so no
// connection is refused, nor answered by a balancer without replicas).
// It binds the node's socket path and writes "ready\n". The old node then
// stops accepting, drains its requests in flight, stops its replicas and
// exits; the new node takes the lock when it has gone. If the new node
// fails before "ready", the connection closes and the old node goes on
// serving as before.
type handoverMsg struct {
	Envs []envState `json:"envs"`
}

// maxHandoverEnvs bounds the sockets one handover carries.
const maxHandoverEnvs = 256

// handover is the old node's side.
func (n *Node) handover(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	names := make([]string, 0, len(n.envs))
	for name := range n.envs {
		names = append(names, name)
	}
	envs := make([]*env, 0, len(names))
	slices.Sort(names)
	for _, name := range names {
		envs = append(envs, n.envs[name])
	}
	n.mu.Unlock()
	if len(envs) > maxHandoverEnvs {
		writeError(w, ferry.Errorf(ferry.EINVALID, "node: %d environments: a handover carries at most %d", len(envs), maxHandoverEnvs))
		return
	}
	// No Apply or Scale while the successor starts from these states.
	for _, e := range envs {
		e.mu.Lock()
		defer e.mu.Unlock()
	}
	var msg handoverMsg
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, e := range envs {
		f, err := e.rt.ListenerFile()
		if err != nil {
			writeError(w, err)
			return
		}
		files = append(files, f)
		msg.Envs = append(msg.Envs, e.st)
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		writeError(w, fmt.Errorf("node: handover: %w", err))
		return
	}
	defer conn.Close()
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		n.log.Error("node: handover over a connection that is not a unix socket")
		return
	}
	if err := sendHandover(uc, msg, files); err != nil {
		n.log.Error("node: handover", "err", err)
		return
	}
	n.log.Info("node: listening sockets handed over; waiting for the new node's replicas", "envs", names)
	line, err := brw.ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		n.log.Warn("node: the new node gave up before it was ready; serving on", "err", err)
		return
	}
	n.handOnce.Do(func() { close(n.handedOver) })
}

// rawFD is f's descriptor, read without (*os.File).Fd, which puts the
// descriptor into blocking mode. A duplicated socket shares its open file
// description, flags included, with the balancer's own: Fd made the old
// node's listening socket blocking, its accept then held the thread in
// the kernel, and closing the listener at the end of the handover waited
// for the next new connection, up to the drain timeout (the old node did
// not exit for a minute, 1 handover in ~40). f must stay open while the
// number is used.
func rawFD(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return -1, err
	}
	return fd, nil
}

func sendHandover(uc *net.UnixConn, msg handoverMsg, files []*os.File) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fd, err := rawFD(f)
		if err != nil {
			return fmt.Errorf("send sockets: %w", err)
		}
		fds[i] = fd
	}
	hdr := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := uc.WriteMsgUnix(hdr, oob, nil); err != nil {
		return fmt.Errorf("send sockets: %w", err)
	}
	if _, err := uc.Write(b); err != nil {
		return fmt.Errorf("send states: %w", err)
	}
	return nil
}

// takeover is the new node's side: it runs before Run serves.
func (n *Node) takeover(ctx context.Context) error {
	path := SocketPath(n.cfg.DataDir)
	uc, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("node: takeover: no node to take over at %s: %w", path, err)
	}
	defer uc.Close()
	if _, err := io.WriteString(uc, "POST /v1/handover HTTP/1.1\r\nHost: node\r\nContent-Length: 0\r\n\r\n"); err != nil {
		return fmt.Errorf("node: takeover: %w", err)
	}
	uc.SetReadDeadline(time.Now().Add(time.Minute))
	msg, lns, err := receiveHandover(uc)
	if err != nil {
		return fmt.Errorf("node: takeover: %w", err)
	}
	uc.SetReadDeadline(time.Time{})
	start := n.now()
	for i, st := range msg.Envs {
		e, err := n.open(st.Config, lns[i], true)
		if err != nil {
			for _, ln := range lns[i+1:] {
				ln.Close()
			}
			n.closeEnvs(context.Background())
			return fmt.Errorf("node: takeover: %w", err)
		}
		e.st = st
	}
	for _, st := range msg.Envs {
		if st.Spec == nil {
			continue
		}
		e, _ := n.env(st.Config.Env)
		if err := e.rt.Apply(ctx, *st.Spec, nil); err != nil {
			n.closeEnvs(context.Background())
			return fmt.Errorf("node: takeover: %s: %w", st.Config.Env, err)
		}
	}
	// Both nodes accept on the sockets from here until the old one has
	// stopped accepting.
	for _, st := range msg.Envs {
		e, _ := n.env(st.Config.Env)
		if err := e.rt.Serve(); err != nil {
			n.closeEnvs(context.Background())
			return fmt.Errorf("node: takeover: %w", err)
		}
	}
	n.log.Info("node: replicas of the handed-over environments ready", "envs", n.names(), "took", n.now().Sub(start).Round(time.Millisecond))
	if err := n.listen(); err != nil {
		n.closeEnvs(context.Background())
		return err
	}
	if _, err := io.WriteString(uc, "ready\n"); err != nil {
		n.log.Warn("node: takeover: telling the old node", "err", err)
	}
	return nil
}

func receiveHandover(uc *net.UnixConn) (handoverMsg, []net.Listener, error) {
	var msg handoverMsg
	hdr := make([]byte, 4)
	oob := make([]byte, unix.CmsgSpace(4*maxHandoverEnvs))
	nr, oobn, _, _, err := uc.ReadMsgUnix(hdr, oob)
	if err != nil {
		return msg, nil, fmt.Errorf("receive sockets: %w", err)
	}
	var fds []int
	if oobn > 0 {
		scms, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return msg, nil, fmt.Errorf("receive sockets: %w", err)
		}
		for _, scm := range scms {
			got, err := unix.ParseUnixRights(&scm)
			if err != nil {
				return msg, nil, fmt.Errorf("receive sockets: %w", err)
			}
			fds = append(fds, got...)
		}
	}
	var lns []net.Listener
	fail := func(err error) (handoverMsg, []net.Listener, error) {
		for _, ln := range lns {
			ln.Close()
		}
		for _, fd := range fds[len(lns):] {
			unix.Close(fd)
		}
		return msg, nil, err
	}
	if _, err := io.ReadFull(uc, hdr[nr:]); err != nil {
		return fail(fmt.Errorf("receive states: %w", err))
	}
	if string(hdr) == "HTTP" {
		line, _ := bufio.NewReader(uc).ReadString('\n')
		return fail(fmt.Errorf("the running node refused the handover: HTTP%s", strings.TrimSpace(line)))
	}
	size := binary.BigEndian.Uint32(hdr)
	if size > maxBody {
		return fail(fmt.Errorf("states of %d bytes: over %d", size, maxBody))
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(uc, b); err != nil {
		return fail(fmt.Errorf("receive states: %w", err))
	}
	if err := json.Unmarshal(b, &msg); err != nil {
		return fail(fmt.Errorf("states: %w", err))
	}
	if len(msg.Envs) != len(fds) {
		return fail(fmt.Errorf("%d environments but %d sockets", len(msg.Envs), len(fds)))
	}
	for _, fd := range fds {
		unix.CloseOnExec(fd) // never into a replica
		f := os.NewFile(uintptr(fd), "listener")
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return fail(fmt.Errorf("socket: %w", err))
		}
		lns = append(lns, ln)
	}
	return msg, lns, nil
}
