// Resolve credentials repeatedly with ONE default-chain provider, as a long-running app does.
//
//   node resolve_loop.mjs      (reads a line per resolution from standard input)
//
// For each input line: call the provider until it answers (the SDK refreshes in the
// background when under 5 minutes remain, so a call may still return the previous keys);
// print one JSON line {accessKeyId, expiration}. Secrets are never printed.
import { createInterface } from "node:readline";
import { defaultProvider } from "@aws-sdk/credential-provider-node";

const provider = defaultProvider();
const lines = createInterface({ input: process.stdin });
for await (const _ of lines) {
  try {
    const creds = await provider();
    console.log(JSON.stringify({
      accessKeyId: creds.accessKeyId,
      expiration: creds.expiration ? creds.expiration.toISOString() : null,
    }));
  } catch (err) {
    console.log(JSON.stringify({ error: `${err?.name ?? "Error"}: ${err?.message ?? err}` }));
  }
}
