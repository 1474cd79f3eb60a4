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
	var files []pemFile
	add := func(name, typ string, der []byte, mode os.FileMode) {
		files = append(files, pemFile{name, typ, der, mode})
	}
	addKey := func(name string, key *ecdsa.PrivateKey) error {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return fmt.Errorf("certs: %w", err)
		}
		add(name, "PRIVATE KEY", der, 0o600)
		return nil
	}
	add(CAFile, "CERTIFICATE", caDER, 0o644)
	if err := addKey(CAKeyFile, caKey); err != nil {
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
		add(c.cert, "CERTIFICATE", der, 0o644)
		if err := addKey(c.key, key); err != nil {
			return err
		}
	}
	return writeAll(dir, files)
}

type pemFile struct {
	name, typ string
	der       []byte
	mode      os.FileMode
}

// writeAll writes every file or none: each to a temporary file that is
// synced and then linked into place (a link never replaces a file, so one
// that appeared since WriteCerts looked is kept), and the ones it placed
// are removed when a later one fails.
func writeAll(dir string, files []pemFile) error {
	var placed []string
	for _, f := range files {
		path, err := writePEM(dir, f)
		if err != nil {
			for _, p := range placed {
				os.Remove(p)
			}
			return err
		}
		placed = append(placed, path)
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

func writePEM(dir string, f pemFile) (string, error) {
	path := filepath.Join(dir, f.name)
	tmp, err := os.CreateTemp(dir, ".loadcap-certs-*")
	if err != nil {
		return "", fmt.Errorf("certs: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = errors.Join(tmp.Chmod(f.mode), pem.Encode(tmp, &pem.Block{Type: f.typ, Bytes: f.der}), tmp.Sync(), tmp.Close())
	if err == nil {
		err = os.Link(tmp.Name(), path)
	}
	if err != nil {
		return "", fmt.Errorf("certs: write %s: %w", path, err)
	}
	return path, nil
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
