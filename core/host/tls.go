package host

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// Mutual TLS between the host and a plugin (docs/plugin-protocol.md).
//
// go-plugin's AutoMTLS generates ECDSA P-521 certificates. Go accepts them,
// but gRPC's C core (grpcio, and the stacks built on it) does not offer
// P-521 in its TLS handshake, so a Python plugin never saw the host's client
// certificate. The host therefore makes its own one-time certificate on
// P-256, which every TLS stack accepts, and hands it to go-plugin as
// ClientConfig.TLSConfig instead of setting AutoMTLS. The wire protocol is
// AutoMTLS's: the certificate goes to the plugin in PLUGIN_CLIENT_CERT, the
// plugin answers with its own certificate in the handshake line, and each
// side trusts exactly the other's certificate. Go plugins (go-plugin's
// Serve) keep answering with P-521, which the Go host accepts.

// clientCertEnv is the variable that carries the host's certificate (PEM).
const clientCertEnv = "PLUGIN_CLIENT_CERT"

// certValidity bounds the one-time certificate's life: long enough for any
// run, short enough that a leaked one is soon worthless.
const certValidity = 30 * 24 * time.Hour

// newClientTLS returns the TLS configuration of one plugin connection and the
// environment entry that hands its certificate to the plugin. RootCAs starts
// empty so that a plugin that returns no certificate in its handshake line
// fails verification instead of falling back to the system roots; go-plugin
// replaces RootCAs and ClientCAs with the plugin's certificate when it
// returns one.
func newClientTLS() (*tls.Config, string, error) {
	certPEM, keyPEM, err := generateP256Cert(time.Now())
	if err != nil {
		return nil, "", fmt.Errorf("generate the host's TLS certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, "", fmt.Errorf("load the host's TLS certificate: %w", err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
		ServerName:   "localhost",
		RootCAs:      x509.NewCertPool(),
		ClientCAs:    x509.NewCertPool(),
	}
	return cfg, clientCertEnv + "=" + string(certPEM), nil
}

// generateP256Cert makes a self-signed certificate for "localhost" usable for
// both client and server authentication, like go-plugin's generateCert but
// on P-256.
func generateP256Cert(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"crops"}},
		DNSNames:              []string{"localhost"},
		NotBefore:             now.Add(-30 * time.Second),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	var c, k bytes.Buffer
	if err := pem.Encode(&c, &pem.Block{Type: "CERTIFICATE", Bytes: der}); err != nil {
		return nil, nil, err
	}
	if err := pem.Encode(&k, &pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}); err != nil {
		return nil, nil, err
	}
	return c.Bytes(), k.Bytes(), nil
}
