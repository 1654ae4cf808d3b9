// Package fakeaws holds test stand-ins for AWS's multi-account behaviour, which the SQS emulator
// does not have: a FAKE STS that answers AssumeRole on 127.0.0.1 and records every call, and a
// FAKE multi-account SQS front that routes each call to one fauxqs per account by the caller's
// access key and puts the account id in queue URLs and ARNs. Neither checks signatures or
// policies beyond what is written here; they exist so tests can tell which identity acted where.
package fakeaws

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AssumeRoleCall is one AssumeRole request the fake STS received.
type AssumeRoleCall struct {
	RoleARN, SessionName, ExternalID string
	Duration                         time.Duration
	// CallerKey is the access key id that signed the call (the manager's own identity).
	CallerKey string
	// Region is the region of the call's signing scope.
	Region string
}

// STS is a FAKE AWS STS: it trusts the roles it is told to (with their external ids), hands out
// credentials whose access key id it remembers with the role's account, and records every call.
type STS struct {
	// URL is the endpoint (http://127.0.0.1:port).
	URL string
	srv *httptest.Server

	mu      sync.Mutex
	trusted map[string]string // role ARN -> external id ("" = none required)
	keys    map[string]string // issued access key id -> account
	calls   []AssumeRoleCall
	issued  int
}

var roleAccount = regexp.MustCompile(`^arn:aws[a-z-]*:iam::(\d{12}):role/.+$`)

// StartSTS starts the fake STS on 127.0.0.1.
func StartSTS() *STS {
	s := &STS{trusted: map[string]string{}, keys: map[string]string{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *STS) Close() { s.srv.Close() }

// Trust lets AssumeRole of role succeed (with externalID, when not empty).
func (s *STS) Trust(role, externalID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trusted[role] = externalID
}

// Calls returns the AssumeRole calls received so far.
func (s *STS) Calls() []AssumeRoleCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]AssumeRoleCall(nil), s.calls...)
}

// AccountOf returns the account of the role whose credentials carry accessKeyID.
func (s *STS) AccountOf(accessKeyID string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.keys[accessKeyID]
	return a, ok
}

type stsCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type assumeRoleResponse struct {
	XMLName     xml.Name       `xml:"https://sts.amazonaws.com/doc/2011-06-15/ AssumeRoleResponse"`
	Credentials stsCredentials `xml:"AssumeRoleResult>Credentials"`
	RoleArn     string         `xml:"AssumeRoleResult>AssumedRoleUser>Arn"`
	RoleID      string         `xml:"AssumeRoleResult>AssumedRoleUser>AssumedRoleId"`
	RequestID   string         `xml:"ResponseMetadata>RequestId"`
}

type errorResponse struct {
	XMLName   xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ ErrorResponse"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

func (s *STS) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("Action") != "AssumeRole" {
		writeXML(w, http.StatusBadRequest, errorResponse{Type: "Sender", Code: "InvalidAction", Message: "the fake STS answers AssumeRole only"})
		return
	}
	key, region := signer(r)
	seconds, _ := strconv.Atoi(r.PostForm.Get("DurationSeconds"))
	call := AssumeRoleCall{
		RoleARN: r.PostForm.Get("RoleArn"), SessionName: r.PostForm.Get("RoleSessionName"), ExternalID: r.PostForm.Get("ExternalId"),
		Duration: time.Duration(seconds) * time.Second, CallerKey: key, Region: region,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, call)
	want, trusted := s.trusted[call.RoleARN]
	m := roleAccount.FindStringSubmatch(call.RoleARN)
	if !trusted || m == nil || want != call.ExternalID {
		writeXML(w, http.StatusForbidden, errorResponse{Type: "Sender", Code: "AccessDenied",
			Message: fmt.Sprintf("fake STS: %s is not allowed to assume %s", key, call.RoleARN)})
		return
	}
	s.issued++
	akid := fmt.Sprintf("ASIAFAKE%s%04d", m[1], s.issued)
	s.keys[akid] = m[1]
	if call.Duration <= 0 {
		call.Duration = 15 * time.Minute
	}
	writeXML(w, http.StatusOK, assumeRoleResponse{
		Credentials: stsCredentials{AccessKeyID: akid, SecretAccessKey: "fake-secret-" + akid, SessionToken: "fake-token-" + akid,
			Expiration: time.Now().Add(call.Duration).UTC().Format(time.RFC3339)},
		RoleArn:   fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s", m[1], call.SessionName),
		RoleID:    "AROAFAKE:" + call.SessionName,
		RequestID: strconv.Itoa(s.issued),
	})
}

var credentialScope = regexp.MustCompile(`Credential=([^/,\s]+)/\d{8}/([^/]+)/`)

// signer reads the access key id and region of a SigV4 Authorization header.
func signer(r *http.Request) (key, region string) {
	if m := credentialScope.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		return m[1], m[2]
	}
	return "", ""
}

func writeXML(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(v)
}

// freeListener listens on a free port of 127.0.0.1.
func freeListener() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// NativeAccount is the account id fauxqs puts in every URL and ARN.
const NativeAccount = "000000000000"

// SQSCall is one call the fake multi-account front routed (or refused).
type SQSCall struct {
	Account, Region, Operation, QueueURL, CallerKey string
	Refused                                         bool
}

// Accounts is a FAKE multi-account SQS: one fauxqs per account behind one endpoint. A call goes to
// the fauxqs of the caller's account — the account of the role whose credentials the fake STS
// issued, or Own for any other key (the manager's own identity) — with that account id in the
// queue URLs and ARNs it answers, and is refused (AccessDenied) when it names a queue URL of
// another account, as SQS refuses a cross-account call no queue policy allows.
type Accounts struct {
	// URL is the SQS endpoint (http://127.0.0.1:port).
	URL string
	// Own is the account of callers the fake STS did not issue keys to.
	Own string

	sts      *STS
	backends map[string]string
	srv      *http.Server
	client   *http.Client

	mu    sync.Mutex
	calls []SQSCall
}

// StartAccounts serves the accounts of backends (account id -> fauxqs endpoint) on 127.0.0.1.
func StartAccounts(sts *STS, own string, backends map[string]string) (*Accounts, error) {
	ln, err := freeListener()
	if err != nil {
		return nil, err
	}
	a := &Accounts{URL: "http://" + ln.Addr().String(), Own: own, sts: sts, backends: backends, client: &http.Client{Timeout: 30 * time.Second}}
	a.srv = &http.Server{Handler: http.HandlerFunc(a.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = a.srv.Serve(ln) }()
	return a, nil
}

// Close stops the server.
func (a *Accounts) Close() { _ = a.srv.Close() }

// Calls returns the calls routed so far.
func (a *Accounts) Calls() []SQSCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]SQSCall(nil), a.calls...)
}

var urlAccount = regexp.MustCompile(`^https?://[^/]+/(\d{12})/`)

func (a *Accounts) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	key, region := signer(r)
	account := a.Own
	if acct, ok := a.sts.AccountOf(key); ok {
		account = acct
	}
	var req struct {
		QueueURL string `json:"QueueUrl"`
	}
	_ = json.Unmarshal(body, &req)
	call := SQSCall{Account: account, Region: region, Operation: strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS."), QueueURL: req.QueueURL, CallerKey: key}
	backend, ok := a.backends[account]
	if m := urlAccount.FindStringSubmatch(req.QueueURL); !ok || (m != nil && m[1] != account) {
		call.Refused = true
		a.record(call)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("X-Amzn-Query-Error", "AccessDenied;Sender")
		w.WriteHeader(http.StatusForbidden)
		_, _ = fmt.Fprintf(w, `{"__type":"com.amazonaws.sqs#AccessDenied","message":"fake SQS: account %s may not call %s on %s"}`, account, call.Operation, req.QueueURL)
		return
	}
	a.record(call)
	out, err := http.NewRequestWithContext(r.Context(), r.Method, backend+r.URL.RequestURI(), bytes.NewReader(bytes.ReplaceAll(body, []byte(account), []byte(NativeAccount))))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	out.Header.Del("Content-Length")
	out.Host = r.Host // queue URLs name this front, not the backend
	resp, err := a.client.Do(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	answer = bytes.ReplaceAll(answer, []byte(NativeAccount), []byte(account))
	for k, v := range resp.Header {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

func (a *Accounts) record(c SQSCall) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, c)
}
