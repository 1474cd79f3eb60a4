package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CertValidity is how long the certificates WriteCerts makes are valid.
const CertValidity = 365 * 24 * time.Hour

// Files WriteCerts writes, in its directory.
const (
	CAFile              = "ca.pem"
	CAKeyFile           = "ca-key.pem"
	AgentCertFile       = "agent.pem"
	AgentKeyFile        = "agent-key.pem"
	CoordinatorCertFile = "coordinator.pem"
	CoordinatorKeyFile  = "coordinator-key.pem"
)

// ServerTLS loads an agent's mutual-TLS configuration: its certificate and
// key, and the CA that coordinators' client certificates must chain to. A
// client without such a certificate is refused in the handshake.
func ServerTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("agent certificate: %w", err)
	}
	pool, err := loadPool(clientCAFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS13,
	}, nil
}

// ClientTLS loads a coordinator's mutual-TLS configuration: its client
// certificate and key, and the CA agents' certificates must chain to.
func ClientTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("coordinator certificate: %w", err)
	}
	pool, err := loadPool(caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS13,
	}, nil
}

func loadPool(caFile string) (*x509.CertPool, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA certificate %s: no PEM certificate in it", caFile)
	}
	return pool, nil
}

// WriteCerts writes a quick-start PKI into dir (created if need be): a CA
// (ca.pem, ca-key.pem), an agent server certificate (agent.pem,
// agent-key.pem) for localhost, 127.0.0.1, ::1 and hosts (names, IPs or
// wildcards like "*.loadcap-agents.default.svc"), and a coordinator client
// certificate (coordinator.pem, coordinator-key.pem), all ECDSA P-256, valid
// for CertValidity. Keys are written 0600. It refuses to overwrite any of
// the files.
func WriteCerts(dir string, hosts ...string) error {
	for _, name := range []string{CAFile, CAKeyFile, AgentCertFile, AgentKeyFile, CoordinatorCertFile, CoordinatorKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return fmt.Errorf("certs: %s already exists; remove it or write elsewhere", filepath.Join(dir, name))
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "loadcap CA", Organization: []string{"loadcap"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CertValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, ca, err := sign(caTmpl, nil, caKey, caKey)
	if err != nil {
		return err
	}
	agent := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "loadcap agent", Organization: []string{"loadcap"}},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(CertValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		switch ip := net.ParseIP(h); {
		case h == "":
		case ip != nil:
			agent.IPAddresses = append(agent.IPAddresses, ip)
		default:
			agent.DNSNames = append(agent.DNSNames, h)
		}
	}
	coord := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "loadcap coordinator", Organization: []string{"loadcap"}},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(CertValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if err := writePEM(dir, CAFile, "CERTIFICATE", caDER, 0o644); err != nil {
		return err
	}
	if err := writeKey(dir, CAKeyFile, caKey); err != nil {
		return err
	}
	for _, c := range []struct {
		tmpl      *x509.Certificate
		cert, key string
	}{{agent, AgentCertFile, AgentKeyFile}, {coord, CoordinatorCertFile, CoordinatorKeyFile}} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return fmt.Errorf("certs: %w", err)
		}
		der, _, err := sign(c.tmpl, ca, key, caKey)
		if err != nil {
			return err
		}
		if err := writePEM(dir, c.cert, "CERTIFICATE", der, 0o644); err != nil {
			return err
		}
		if err := writeKey(dir, c.key, key); err != nil {
			return err
		}
	}
	return nil
}

// sign issues tmpl for key, signed by parent (nil: self-signed) with
// parentKey.
func sign(tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) ([]byte, *x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %w", err)
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: sign %s: %w", tmpl.Subject.CommonName, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %w", err)
	}
	return der, c, nil
}

func writeKey(dir, name string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return writePEM(dir, name, "PRIVATE KEY", der, 0o600)
}

func writePEM(dir, name, typ string, der []byte, mode os.FileMode) error {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := errors.Join(pem.Encode(f, &pem.Block{Type: typ, Bytes: der}), f.Close()); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	return nil
}

// isLoopback reports whether a host:port (or bare host) names a loopback
// address: localhost, 127.0.0.0/8 or ::1. An empty host (all interfaces)
// is not loopback.
func isLoopback(addr string) bool {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
