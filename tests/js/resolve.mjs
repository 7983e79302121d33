// Resolve credentials with the AWS SDK for JavaScript v3 default chain, then call STS.
//
//   node resolve.mjs [STS_ENDPOINT_URL]
//
// The STS endpoint comes from argv[2], else AWS_ENDPOINT_URL; without one the STS call is
// skipped. Prints one JSON line: {accessKeyId, expiration, stsAccessKeyId, arn}. Secrets
// are never printed, also not in errors (only the error's name and message).
import { defaultProvider } from "@aws-sdk/credential-provider-node";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";

const endpoint = process.argv[2] || process.env.AWS_ENDPOINT_URL || "";
const region = process.env.AWS_REGION || "us-east-1";

try {
  // The default chain, exactly as a client without explicit credentials builds it.
  const creds = await defaultProvider()();
  const out = {
    accessKeyId: creds.accessKeyId,
    expiration: creds.expiration ? creds.expiration.toISOString() : null,
    stsAccessKeyId: null,
    arn: null,
  };
  if (endpoint) {
    // No `credentials` option: the client resolves its own through the default chain.
    const sts = new STSClient({ region, endpoint });
    out.stsAccessKeyId = (await sts.config.credentials()).accessKeyId;
    const who = await sts.send(new GetCallerIdentityCommand({}));
    out.arn = who.Arn;
  }
  console.log(JSON.stringify(out));
} catch (err) {
  console.error(`${err?.name ?? "Error"}: ${err?.message ?? err}`);
  process.exit(1);
}
