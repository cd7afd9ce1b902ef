import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import githubAppJwt from 'universal-github-app-jwt';

/**
 * Reads a GitHub App private key (PEM, PKCS#1 `BEGIN RSA PRIVATE KEY` or PKCS#8 `BEGIN PRIVATE
 * KEY`) and returns it as PKCS#8 PEM, the form the JWT library signs with. Checked at start-up so
 * a missing, unreadable or wrong key stops the server with a message naming the file instead of
 * failing every later request.
 */
export function readAppPrivateKey(file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`github-app: private-key-path ${file}: cannot read the private key: ${(err as Error).message}`);
  }
  let key;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new Error(`github-app: private-key-path ${file}: not a PEM RSA private key (PKCS#1 or PKCS#8): ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw new Error(`github-app: private-key-path ${file}: the key is ${key.asymmetricKeyType ?? 'not asymmetric'}, GitHub App keys are RSA`);
  }
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** A signed app JWT and when GitHub stops accepting it (epoch ms). */
export interface AppJwt {
  token: string;
  expiresAtMs: number;
}

/**
 * Signs the app JWT (RS256) GitHub wants on `/app/...` and installation lookups: `iss` = app id,
 * `iat` = now - 30 s and `exp` = iat + 10 min, as universal-github-app-jwt sets them. The 30 s
 * back-dating absorbs a local clock running ahead of GitHub's ("iat in the future" rejections);
 * `exp` therefore lies 9.5 min ahead, inside GitHub's 10 min maximum.
 */
export async function signAppJwt(appId: string, pkcs8Pem: string, nowMs = Date.now()): Promise<AppJwt> {
  const result = await githubAppJwt({ id: appId, privateKey: pkcs8Pem, now: Math.floor(nowMs / 1000) });
  return { token: result.token, expiresAtMs: result.expiration * 1000 };
}
