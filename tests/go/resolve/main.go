// Resolve credentials with the AWS SDK for Go v2's default chain (LoadDefaultConfig), as an
// unmodified Go program does, and print {accessKeyId, source, canExpire, expires} as JSON.
// Secrets are never printed; on failure the SDK's error goes to stderr, exit code 2.
//
// Built by tests/test_go_sdk.py in GOPATH mode against Debian's
// golang-github-aws-aws-sdk-go-v2-dev (no module download).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/config"
)

func main() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "config:", err)
		os.Exit(1)
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "credentials:", err)
		os.Exit(2)
	}
	out, _ := json.Marshal(map[string]interface{}{
		"accessKeyId": creds.AccessKeyID,
		"source":      creds.Source,
		"canExpire":   creds.CanExpire,
		"expires":     creds.Expires.UTC().Format("2006-01-02T15:04:05Z"),
	})
	fmt.Println(string(out))
}
