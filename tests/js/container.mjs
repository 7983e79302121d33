// Resolve credentials through the container-credentials channel with the AWS SDK for
// JavaScript v3, configured only by the environment (FULL_URI, token or token file).
//
//   node container.mjs chain | container-metadata | http
//
// chain: the default provider chain (remoteProvider: fromHttp, then fromContainerMetadata);
// container-metadata: @smithy's fromContainerMetadata alone (accepts only 127.0.0.1 and
// localhost); http: @aws-sdk/credential-provider-http's fromHttp alone.
// Prints one JSON line {accessKeyId, expiration}. Secrets are never printed, also not in
// errors (only the error's name and message).
import { defaultProvider } from "@aws-sdk/credential-provider-node";
import { fromHttp } from "@aws-sdk/credential-provider-http";
import { fromContainerMetadata } from "@smithy/credential-provider-imds";

const providers = {
  chain: () => defaultProvider(),
  "container-metadata": () => fromContainerMetadata({ timeout: 2000, maxRetries: 0 }),
  http: () => fromHttp({ maxRetries: 0 }),
};
const make = providers[process.argv[2]];
if (!make) {
  console.error(`usage: node container.mjs ${Object.keys(providers).join("|")}`);
  process.exit(2);
}

try {
  const creds = await make()();
  console.log(
    JSON.stringify({
      accessKeyId: creds.accessKeyId,
      expiration: creds.expiration ? creds.expiration.toISOString() : null,
    }),
  );
} catch (err) {
  console.error(`${err?.name ?? "Error"}: ${err?.message ?? err}`);
  process.exit(1);
}
