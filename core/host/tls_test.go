package host

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"
)

// The host's certificate must be on P-256 (grpcio does not accept P-521) and
// must work for mutual TLS against a server that trusts exactly it.
func TestNewClientTLSIsP256AndMutual(t *testing.T) {
	cfg, env, err := newClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	pemText, ok := strings.CutPrefix(env, clientCertEnv+"=")
	if !ok {
		t.Fatalf("env entry %q does not start with %s=", env[:min(len(env), 40)], clientCertEnv)
	}
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		t.Fatal("PLUGIN_CLIENT_CERT holds no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("host certificate key is %T (%v), want ECDSA P-256", cert.PublicKey, cert.PublicKey)
	}
	if cert.NotAfter.Sub(time.Now()) > certValidity+time.Minute {
		t.Errorf("certificate valid until %v: longer than %v", cert.NotAfter, certValidity)
	}

	// A plugin-side server: its own certificate, trusting only the host's.
	srvPEM, srvKey, err := generateP256Cert(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := tls.X509KeyPair(srvPEM, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	hostPool := x509.NewCertPool()
	hostPool.AddCert(cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srvCert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: hostPool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		srvErr <- c.(*tls.Conn).Handshake()
	}()

	// Without the plugin's certificate in RootCAs the host refuses (no
	// fallback to the system roots).
	if c, err := tls.Dial("tcp", ln.Addr().String(), cfg.Clone()); err == nil {
		c.Close()
		t.Fatal("dial without the plugin's certificate succeeded; want a verification error")
	}
	<-srvErr
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		srvErr <- c.(*tls.Conn).Handshake()
	}()
	// What go-plugin does with the certificate of the handshake line.
	good := cfg.Clone()
	pool := x509.NewCertPool()
	leaf, _ := pem.Decode(srvPEM)
	srvX509, err := x509.ParseCertificate(leaf.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool.AddCert(srvX509)
	good.RootCAs, good.ClientCAs = pool, pool
	c, err := tls.Dial("tcp", ln.Addr().String(), good)
	if err != nil {
		t.Fatalf("mutual TLS dial: %v", err)
	}
	defer c.Close()
	if err := <-srvErr; err != nil {
		t.Fatalf("server side of the handshake: %v", err)
	}
}
