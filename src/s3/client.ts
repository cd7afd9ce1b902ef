import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { globalBlockSchemas, type GlobalConfig } from '../config/global-schema.js';

/** The global `s3 {}` block after validation (its schema applies every default). */
export type S3Settings = GlobalConfig['s3'];

/**
 * The schema's default endpoint is AWS itself, which the SDK reaches by region: the SDK gets no
 * endpoint then. Read from the schema so the default is written once.
 */
const AWS_ENDPOINT = globalBlockSchemas.s3.parse({}).endpoint;

/** Sockets kept per client: parallel ranged reads and multipart parts share them. */
const MAX_SOCKETS = 64;

const clients = new Map<string, S3Client>();

function endpointURL(s: S3Settings): string | undefined {
  if (s.endpoint === AWS_ENDPOINT && s['use-ssl']) return undefined;
  if (/^https?:\/\//.test(s.endpoint)) return s.endpoint;
  return `${s['use-ssl'] ? 'https' : 'http'}://${s.endpoint}`;
}

/**
 * One S3 client per distinct `s3 {}` block, shared by the cache and the metadata store (one
 * connection pool). Credentials come from the block when given, else from the AWS SDK default
 * chain (env, shared files, web identity, container and instance metadata).
 */
export function sharedS3Client(settings: S3Settings): S3Client {
  const id = JSON.stringify(settings);
  let client = clients.get(id);
  if (client) return client;
  const endpoint = endpointURL(settings);
  const agentOptions = { keepAlive: true, maxSockets: MAX_SOCKETS };
  client = new S3Client({
    region: settings.region,
    forcePathStyle: settings['use-path-style'],
    ...(endpoint ? { endpoint } : {}),
    ...(settings['access-key-id'] && settings['secret-access-key']
      ? { credentials: { accessKeyId: settings['access-key-id'], secretAccessKey: settings['secret-access-key'] } }
      : {}),
    // Objects are streamed by us; the SDK's own request checksums would make it buffer bodies of unknown length.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: 5_000,
      // Per-socket inactivity, not a whole-transfer deadline: large bodies may take minutes.
      requestTimeout: 60_000,
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent({ ...agentOptions, rejectUnauthorized: !settings['skip-ssl-verify'] }),
    }),
  });
  clients.set(id, client);
  return client;
}

/** Fails with a clear message unless `bucket` exists and is reachable (HeadBucket, not ListBuckets). */
export async function verifyBucket(client: S3Client, bucket: string, what: string): Promise<void> {
  try {
    await client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: AbortSignal.timeout(15_000) });
  } catch (err) {
    const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    const status = e.$metadata?.httpStatusCode;
    const reason = status === 404 ? 'bucket does not exist' : status === 403 ? 'access denied' : `${e.name ?? 'error'}: ${e.message ?? String(err)}`;
    throw new Error(`${what}: S3 bucket ${JSON.stringify(bucket)} is not usable (${reason})`);
  }
}

/** True for S3's "no such object" answers (GetObject says NoSuchKey, HeadObject a bare 404). */
export function isMissing(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}

/** True when S3 refused a conditional request (If-Match / If-None-Match). */
export function isPreconditionFailed(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  const status = e?.$metadata?.httpStatusCode;
  return e?.name === 'PreconditionFailed' || status === 412 || status === 409;
}
