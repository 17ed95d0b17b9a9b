/*
 * The installed-package check of libposture (tests/vm/run.sh): compiled on the host
 * against the header and pkg-config file of the libposture-dev .deb (and linked against
 * the libposture0 .deb's library), run in the systemd guest where only the installed
 * packages provide libposture.so.0. It collects this machine's posture, signs it with a
 * new software key in the directory given as argv[1], and verifies the evidence with
 * that key's public JWK and a policy that admits any valid evidence.
 * Prints one line per step; exits 0 only when every step succeeded.
 */
#include <stdio.h>
#include <string.h>

#include "posture.h"

static int fail(const char *what, posture_status status) {
  char message[POSTURE_ERROR_MESSAGE_MAX + 1];
  size_t written = 0;
  posture_error_message((uint32_t)status, message, sizeof message, &written);
  printf("FAIL %s: %s\n", what, message);
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s KEY_DIR\n", argv[0]);
    return 2;
  }
  /* The library loaded is the one the header describes. */
  if (strcmp(posture_version(), POSTURE_VERSION_STRING) != 0) {
    printf("FAIL library %s, header %s\n", posture_version(), POSTURE_VERSION_STRING);
    return 1;
  }
  printf("library %s\n", posture_version());

  posture_buf *report = NULL, *jwk = NULL, *evidence = NULL;
  posture_key *key = NULL;
  posture_verifier *verifier = NULL;
  posture_result *result = NULL;
  posture_status status;
  const char *nonce = "vm-roundtrip-nonce", *audience = "vm.example";

  if ((status = posture_collect_json((const uint8_t *)"", 0, &report)))
    return fail("collect", status);
  printf("collected a report of %zu bytes\n", posture_buf_len(report));
  if ((status = posture_key_software_load_or_create((const uint8_t *)argv[1],
                                                    strlen(argv[1]), &key)))
    return fail("software key", status);
  if ((status = posture_key_public_jwk(key, &jwk)))
    return fail("public JWK", status);
  if ((status = posture_evidence_sign(key, posture_buf_data(report), posture_buf_len(report),
                                      (const uint8_t *)nonce, strlen(nonce),
                                      (const uint8_t *)audience, strlen(audience), 300,
                                      &evidence)))
    return fail("sign", status);
  if ((status = posture_verifier_new(posture_buf_data(jwk), posture_buf_len(jwk),
                                     (const uint8_t *)"{}", 2, (const uint8_t *)audience,
                                     strlen(audience), 0, POSTURE_DEFAULT_SKEW_SECS,
                                     &verifier)))
    return fail("verifier", status);
  if ((status = posture_verify(verifier, posture_buf_data(evidence), posture_buf_len(evidence),
                               (const uint8_t *)nonce, strlen(nonce), &result)))
    return fail("verify", status);
  posture_decision decision;
  if ((status = posture_result_decision(result, &decision)))
    return fail("decision", status);
  if (decision != POSTURE_DECISION_ALLOW) {
    printf("FAIL the policy {} denied valid evidence\n");
    return 1;
  }
  printf("signed and verified %zu bytes of evidence: allow\n", posture_buf_len(evidence));

  posture_result_free(result);
  posture_verifier_free(verifier);
  posture_buf_free(evidence);
  posture_buf_free(jwk);
  posture_key_free(key);
  posture_buf_free(report);
  return 0;
}
