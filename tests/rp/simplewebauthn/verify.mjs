// SimpleWebAuthn (@simplewebauthn/server) as a relying party, for posture's tests.
//
//   node verify.mjs register REQUEST.json
//
// REQUEST.json: {"response": <RegistrationResponseJSON>, "challenge": B64URL, "rp_id",
// "origin", "root_pem": the trusted attestation root}. Prints {"ok": true, "fmt", "aaguid"}
// or {"ok": false, "error"}; exits 0 when accepted, 1 when refused.
import { readFileSync } from 'node:fs';
import { SettingsService, verifyRegistrationResponse } from '@simplewebauthn/server';

const [command, path] = process.argv.slice(2);
const req = JSON.parse(readFileSync(path, 'utf8'));
if (command !== 'register') {
  console.log(JSON.stringify({ ok: false, error: `unknown command ${command}` }));
  process.exit(1);
}
// Only the posture attestation CA's root is trusted for `tpm`.
SettingsService.setRootCertificates({ identifier: 'tpm', certificates: [req.root_pem] });
try {
  const result = await verifyRegistrationResponse({
    response: req.response,
    expectedChallenge: req.challenge,
    expectedOrigin: req.origin,
    expectedRPID: req.rp_id,
    requireUserVerification: false,
  });
  const info = result.registrationInfo ?? {};
  console.log(JSON.stringify({ ok: result.verified, fmt: info.fmt, aaguid: info.aaguid }));
  process.exit(result.verified ? 0 : 1);
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e?.message ?? e) }));
  process.exit(1);
}
