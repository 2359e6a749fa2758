package kubetest

import (
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ferryhq/ferry/internal/testenv"
)

// RelayRuleComment marks the iptables rules a Relay adds; scripts/k8s-node
// down removes any that a killed test left.
const RelayRuleComment = "ferry kubetest: a relay the real node pods may reach"

// RealNodeGateway is the host's address on the real node's pod bridge
// (FERRY_TEST_NODE_GATEWAY, printed by scripts/k8s-node up): the one host
// address the node's pods can reach, and only where a Relay lets them.
func (c *Cluster) RealNodeGateway() string {
	c.t.Helper()
	gw := os.Getenv("FERRY_TEST_NODE_GATEWAY")
	if net.ParseIP(gw) == nil {
		testenv.Unavailable(c.t, "node", "no real node's gateway: FERRY_TEST_NODE_GATEWAY=%q; scripts/k8s-node up prints it beside FERRY_TEST_NODE", gw)
	}
	return gw
}

// Relay lets the real node's pods reach to, a host:port on the host (on
// loopback): it listens on the node's gateway at a free port, copies each
// connection to a new one to to, and accepts new connections from the
// pods to that port (an iptables rule ahead of the node's own, which drops
// every other connection from the bridge to the host). It returns the
// address pods dial. The listener, its connections and the rule end with
// the test. The gateway need not exist yet: the bridge appears with the
// node's first pod (IP_FREEBIND).
func (c *Cluster) Relay(to string) string {
	c.t.Helper()
	gw := c.RealNodeGateway()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1) }); err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp4", net.JoinHostPort(gw, "0"))
	if err != nil {
		c.t.Fatalf("relay to %s: listen on the node's gateway: %v", to, err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	rule := []string{"INPUT", "-d", gw, "-p", "tcp", "--dport", port, "-m", "comment", "--comment", RelayRuleComment, "-j", "ACCEPT"}
	if out, err := exec.Command("iptables", append([]string{"-I"}, rule...)...).CombinedOutput(); err != nil {
		ln.Close()
		c.t.Fatalf("relay to %s: let the pods in: iptables: %v: %s", to, err, out)
	}
	r := &relay{ln: ln, to: to, conns: map[net.Conn]bool{}}
	r.wg.Add(1)
	go r.accept()
	c.t.Cleanup(func() {
		r.close()
		if out, err := exec.Command("iptables", append([]string{"-D"}, rule...)...).CombinedOutput(); err != nil {
			c.t.Errorf("relay to %s: remove its iptables rule: %v: %s", to, err, out)
		}
	})
	return ln.Addr().String()
}

// relay copies the connections its listener accepts to new ones to to.
type relay struct {
	ln    net.Listener
	to    string
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool // both ends of every open pair
}

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		in, err := r.ln.Accept()
		if err != nil {
			return // closed
		}
		out, err := net.DialTimeout("tcp", r.to, 5*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		if !r.track(in, out) {
			return
		}
		r.wg.Add(2)
		go r.pipe(out, in)
		go r.pipe(in, out)
	}
}

// track records a pair, or closes it and reports false once the relay is
// closed.
func (r *relay) track(in, out net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns == nil {
		in.Close()
		out.Close()
		return false
	}
	r.conns[in], r.conns[out] = true, true
	return true
}

// pipe copies from src to dst, then closes both.
func (r *relay) pipe(dst, src net.Conn) {
	defer r.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	r.mu.Lock()
	if r.conns != nil {
		delete(r.conns, dst)
		delete(r.conns, src)
	}
	r.mu.Unlock()
}

func (r *relay) close() {
	r.ln.Close()
	r.mu.Lock()
	for conn := range r.conns {
		conn.Close()
	}
	r.conns = nil
	r.mu.Unlock()
	r.wg.Wait()
}

// APIForPods lets the real node's pods reach the API server as pods of a
// cluster do, through Service default/kubernetes (the in-cluster
// configuration's KUBERNETES_SERVICE_HOST, 10.96.0.1:443): the harness's
// API server listens on loopback and runs no endpoint reconciler, so the
// Service has no endpoints until this gives it one, a Relay to the API
// server. The API server's certificate names 10.96.0.1. The EndpointSlice
// is deleted when the test ends.
func (c *Cluster) APIForPods() {
	c.t.Helper()
	u, err := url.Parse(c.Config.Host)
	if err != nil || u.Host == "" {
		c.t.Fatalf("the API server's address %q: %v", c.Config.Host, err)
	}
	addr := c.Relay(u.Host)
	host, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	ctx := context.Background()
	slices := c.Client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault)
	const name = "kubernetes"
	if err := slices.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		c.t.Fatalf("delete an earlier EndpointSlice %s: %v", name, err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			discoveryv1.LabelServiceName: "kubernetes",
			discoveryv1.LabelManagedBy:   "ferry-test",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: new("https"), Port: new(int32(port)), Protocol: new(corev1.ProtocolTCP)}},
	}
	if _, err := slices.Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		c.t.Fatalf("give Service default/kubernetes the endpoint %s: %v", addr, err)
	}
	c.t.Cleanup(func() {
		err := slices.Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			c.t.Errorf("delete EndpointSlice default/%s: %v", name, err)
		}
	})
}
