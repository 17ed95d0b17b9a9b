/*
 * C consumer test of libposture: every entry point through the committed header, built
 * with -Wall -Wextra -Werror, linked statically and dynamically and run under valgrind by
 * posture-ffi/tests/c_api.rs.
 *
 * Inputs come from the directory in $POSTURE_TEST_DIR, written by that Rust test with
 * posture-core (a temporary software key signing a fixture report):
 *   trusted.jwk, trusted.pem   public key A (the trusted device key), as JWK and PEM
 *   other.jwk                  public key B (not trusted by default)
 *   allow.toml, deny.toml      policies: the fixture report satisfies the first only
 *   evidence.jws               signed by A, nonce TEST_NONCE, audience TEST_AUDIENCE
 *   expired.jws                signed by A two hours ago with a one-minute lifetime
 *   wrong_key.jws              signed by B, otherwise like evidence.jws
 *   (keydir/ and open-keydir/ are created by the agent test)
 *
 * Prints "ok <name>" per test; on the first failure prints "FAIL ..." and exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "posture.h"

#define TEST_NONCE "c-test-nonce-0001"
#define TEST_AUDIENCE "proxy.example"
#define THREADS 8
#define VERIFICATIONS_PER_THREAD 4

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);          \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

#define CHECK_STATUS(expr, expected)                                           \
  do {                                                                         \
    posture_status status_ = (expr);                                           \
    if (status_ != (expected)) {                                               \
      fprintf(stderr, "FAIL %s:%d: %s returned %u (%s), expected %s\n",        \
              __FILE__, __LINE__, #expr, (unsigned)status_,                    \
              message_of(status_), #expected);                                 \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

static const char *message_of(posture_status status) {
  static char text[POSTURE_ERROR_MESSAGE_MAX + 1];
  size_t written = 0;
  if (posture_error_message(status, text, sizeof text, &written) !=
      POSTURE_STATUS_OK) {
    return "(no message)";
  }
  return text;
}

/* A whole file in a malloc'd buffer; *len gets its length. */
static char *read_file(const char *name, size_t *len) {
  const char *dir = getenv("POSTURE_TEST_DIR");
  char path[4096];
  CHECK(dir != NULL);
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "FAIL cannot open %s\n", path);
    exit(1);
  }
  CHECK(fseek(f, 0, SEEK_END) == 0);
  long size = ftell(f);
  CHECK(size >= 0);
  CHECK(fseek(f, 0, SEEK_SET) == 0);
  char *data = malloc((size_t)size + 1);
  CHECK(data != NULL);
  CHECK(fread(data, 1, (size_t)size, f) == (size_t)size);
  data[size] = '\0';
  fclose(f);
  *len = (size_t)size;
  return data;
}

typedef struct {
  char *data;
  size_t len;
} text;

static text load(const char *name) {
  text t;
  t.data = read_file(name, &t.len);
  return t;
}

static const uint8_t *u8(const char *s) { return (const uint8_t *)s; }

static posture_verifier *new_verifier(text keys, text policy,
                                      const char *audience) {
  posture_verifier *verifier = NULL;
  CHECK_STATUS(posture_verifier_new(u8(keys.data), keys.len, u8(policy.data),
                                    policy.len, u8(audience), strlen(audience),
                                    0, POSTURE_DEFAULT_SKEW_SECS, &verifier),
               POSTURE_STATUS_OK);
  CHECK(verifier != NULL);
  return verifier;
}

static posture_status verify(const posture_verifier *verifier, text evidence,
                             const char *nonce, posture_result **result) {
  return posture_verify(verifier, u8(evidence.data), evidence.len, u8(nonce),
                        strlen(nonce), result);
}

/* The status of verifying `evidence`, checking that no result is handed out on failure. */
static posture_status verify_status(const posture_verifier *verifier,
                                    text evidence, const char *nonce) {
  posture_result *sentinel = (posture_result *)&sentinel;
  posture_result *result = sentinel;
  posture_status status = verify(verifier, evidence, nonce, &result);
  if (status == POSTURE_STATUS_OK) {
    CHECK(result != sentinel && result != NULL);
    posture_result_free(result);
  } else {
    CHECK(result == sentinel); /* out-params are written only on success */
  }
  return status;
}

static void test_version(void) {
  CHECK(strcmp(posture_version(), POSTURE_VERSION_STRING) == 0);
  char expected[32];
  snprintf(expected, sizeof expected, "%d.%d.%d", POSTURE_VERSION_MAJOR,
           POSTURE_VERSION_MINOR, POSTURE_VERSION_PATCH);
  CHECK(strcmp(posture_version(), expected) == 0);
  puts("ok version");
}

static void test_error_message(void) {
  char buf[POSTURE_ERROR_MESSAGE_MAX + 1];
  size_t written = 12345;
  CHECK_STATUS(posture_error_message(POSTURE_STATUS_EVIDENCE_EXPIRED, buf,
                                     sizeof buf, &written),
               POSTURE_STATUS_OK);
  CHECK(strcmp(buf, "the evidence has expired") == 0);
  CHECK(written == strlen(buf));

  CHECK_STATUS(posture_error_message(4000000000u, buf, sizeof buf, &written),
               POSTURE_STATUS_OK);
  CHECK(strstr(buf, "unknown posture status code 4000000000") != NULL);

  char small[4] = {'x', 'x', 'x', 'x'};
  written = 777;
  CHECK_STATUS(posture_error_message(POSTURE_STATUS_EVIDENCE_BAD_SIGNATURE, small,
                                     sizeof small, &written),
               POSTURE_STATUS_INSUFFICIENT_SIZE);
  CHECK(written == 777 && small[0] == 'x');
  /* Every documented code has a message that fits the documented maximum. */
  for (uint32_t code = 0; code < 400; code++) {
    CHECK_STATUS(posture_error_message(code, buf, sizeof buf, &written),
                 POSTURE_STATUS_OK);
    CHECK(written <= POSTURE_ERROR_MESSAGE_MAX && buf[written] == '\0');
  }
  puts("ok error_message");
}

static void test_null_arguments(text keys, text allow, text evidence) {
  char buf[64];
  size_t written = 0;
  posture_verifier *verifier = new_verifier(keys, allow, TEST_AUDIENCE);
  posture_result *result = NULL;
  posture_buf *out = NULL;
  posture_key *key = NULL;
  posture_decision decision = 0;
  const uint8_t *aud = u8(TEST_AUDIENCE);
  size_t aud_len = strlen(TEST_AUDIENCE);
  const uint8_t *nonce = u8(TEST_NONCE);
  size_t nonce_len = strlen(TEST_NONCE);
  const posture_status null = POSTURE_STATUS_NULL_PARAMETER;

  CHECK_STATUS(posture_error_message(0, NULL, sizeof buf, &written), null);
  CHECK_STATUS(posture_error_message(0, buf, sizeof buf, NULL), null);

  CHECK(posture_buf_data(NULL) == NULL);
  CHECK(posture_buf_len(NULL) == 0);
  posture_buf_free(NULL);
  posture_verifier_free(NULL);
  posture_result_free(NULL);
  posture_key_free(NULL);

  CHECK_STATUS(posture_collect_json(NULL, 0, &out), null);
  CHECK_STATUS(posture_collect_json(u8(""), 0, NULL), null);
  posture_buf *out2 = NULL;
  CHECK_STATUS(posture_agent_collect_json(NULL, 0, &out, &out2), null);
  CHECK_STATUS(posture_agent_collect_json(u8(""), 0, NULL, &out2), null);
  CHECK_STATUS(posture_agent_collect_json(u8(""), 0, &out, NULL), null);
  posture_key *null_key = NULL;
  CHECK_STATUS(posture_key_open(NULL, 0, &null_key), null);
  CHECK_STATUS(posture_key_open(u8(""), 0, NULL), null);

  const uint8_t *k = u8(keys.data), *p = u8(allow.data);
  CHECK_STATUS(posture_verifier_new(NULL, keys.len, p, allow.len, aud, aud_len, 0, 60, &verifier), null);
  CHECK_STATUS(posture_verifier_new(k, keys.len, NULL, allow.len, aud, aud_len, 0, 60, &verifier), null);
  CHECK_STATUS(posture_verifier_new(k, keys.len, p, allow.len, NULL, aud_len, 0, 60, &verifier), null);
  CHECK_STATUS(posture_verifier_new(k, keys.len, p, allow.len, aud, aud_len, 0, 60, NULL), null);

  const uint8_t *e = u8(evidence.data);
  CHECK_STATUS(posture_verify(NULL, e, evidence.len, nonce, nonce_len, &result), null);
  CHECK_STATUS(posture_verify(verifier, NULL, evidence.len, nonce, nonce_len, &result), null);
  CHECK_STATUS(posture_verify(verifier, e, evidence.len, NULL, nonce_len, &result), null);
  CHECK_STATUS(posture_verify(verifier, e, evidence.len, nonce, nonce_len, NULL), null);
  CHECK(result == NULL);

  CHECK_STATUS(posture_verify(verifier, e, evidence.len, nonce, nonce_len, &result),
               POSTURE_STATUS_OK);
  CHECK_STATUS(posture_result_decision(NULL, &decision), null);
  CHECK_STATUS(posture_result_decision(result, NULL), null);
  CHECK_STATUS(posture_result_reasons_json(NULL, &out), null);
  CHECK_STATUS(posture_result_reasons_json(result, NULL), null);
  CHECK_STATUS(posture_result_claims_json(NULL, &out), null);
  CHECK_STATUS(posture_result_claims_json(result, NULL), null);
  CHECK(out == NULL && decision == 0);

  const char *dir = "/nonexistent-posture-key-dir";
  CHECK_STATUS(posture_key_software_load_or_create(NULL, 3, &key), null);
  CHECK_STATUS(posture_key_software_load_or_create(u8(dir), strlen(dir), NULL), null);
  CHECK_STATUS(posture_key_public_jwk(NULL, &out), null);
  CHECK_STATUS(posture_evidence_sign(NULL, u8("{}"), 2, nonce, nonce_len, aud, aud_len, 60, &out), null);
  CHECK(key == NULL && out == NULL);

  posture_result_free(result);
  posture_verifier_free(verifier);
  puts("ok null_arguments");
}

static void test_verifier_construction(text jwk, text pem, text allow) {
  posture_verifier *verifier = NULL;
  const char *garbage = "this is not a key";
  const char *bad_policy = "required_checks = \"not a list\"";
  const char *unknown_rule = "allow_everything = true";
  const uint8_t bad_utf8[] = {0xff, 0xfe, 0xfd};

  /* JWK, PEM and a JWK Set are all accepted. */
  verifier = new_verifier(jwk, allow, TEST_AUDIENCE);
  posture_verifier_free(verifier);
  verifier = new_verifier(pem, allow, TEST_AUDIENCE);
  posture_verifier_free(verifier);
  size_t set_len = jwk.len + 16;
  char *set = malloc(set_len + 1);
  CHECK(set != NULL);
  snprintf(set, set_len + 1, "{\"keys\": [%s]}", jwk.data);
  text set_text = {set, strlen(set)};
  verifier = new_verifier(set_text, allow, TEST_AUDIENCE);
  posture_verifier_free(verifier);
  free(set);

  verifier = NULL;
  CHECK_STATUS(posture_verifier_new(u8(garbage), strlen(garbage), u8(allow.data), allow.len,
                                    u8(""), 0, 0, 60, &verifier),
               POSTURE_STATUS_INVALID_KEY);
  CHECK_STATUS(posture_verifier_new(u8("{\"keys\": []}"), 12, u8(allow.data), allow.len,
                                    u8(""), 0, 0, 60, &verifier),
               POSTURE_STATUS_INVALID_KEY);
  CHECK_STATUS(posture_verifier_new(u8(jwk.data), jwk.len, u8(bad_policy), strlen(bad_policy),
                                    u8(""), 0, 0, 60, &verifier),
               POSTURE_STATUS_INVALID_POLICY);
  CHECK_STATUS(posture_verifier_new(u8(jwk.data), jwk.len, u8(unknown_rule), strlen(unknown_rule),
                                    u8(""), 0, 0, 60, &verifier),
               POSTURE_STATUS_INVALID_POLICY);
  CHECK_STATUS(posture_verifier_new(bad_utf8, sizeof bad_utf8, u8(allow.data), allow.len,
                                    u8(""), 0, 0, 60, &verifier),
               POSTURE_STATUS_INVALID_UTF8);
  size_t huge_len = POSTURE_MAX_KEYS_BYTES + 1;
  uint8_t *huge = malloc(huge_len);
  CHECK(huge != NULL);
  memset(huge, 'A', huge_len);
  CHECK_STATUS(posture_verifier_new(huge, huge_len, u8(allow.data), allow.len, u8(""), 0, 0, 60,
                                    &verifier),
               POSTURE_STATUS_INPUT_TOO_LARGE);
  free(huge);
  CHECK(verifier == NULL);
  puts("ok verifier_construction");
}

static void test_happy_path(text jwk, text allow, text deny, text evidence) {
  posture_verifier *verifier = new_verifier(jwk, allow, TEST_AUDIENCE);
  posture_result *result = NULL;
  CHECK_STATUS(verify(verifier, evidence, TEST_NONCE, &result), POSTURE_STATUS_OK);

  posture_decision decision = 0;
  CHECK_STATUS(posture_result_decision(result, &decision), POSTURE_STATUS_OK);
  CHECK(decision == POSTURE_DECISION_ALLOW);

  posture_buf *reasons = NULL;
  CHECK_STATUS(posture_result_reasons_json(result, &reasons), POSTURE_STATUS_OK);
  CHECK(strcmp((const char *)posture_buf_data(reasons), "[]") == 0);
  CHECK(posture_buf_len(reasons) == 2);
  posture_buf_free(reasons);

  posture_buf *claims = NULL;
  CHECK_STATUS(posture_result_claims_json(result, &claims), POSTURE_STATUS_OK);
  const char *json = (const char *)posture_buf_data(claims);
  CHECK(strlen(json) == posture_buf_len(claims));
  CHECK(strstr(json, "\"eat_nonce\":\"" TEST_NONCE "\"") != NULL);
  CHECK(strstr(json, "\"id\":\"disk_encryption\"") != NULL);
  CHECK(strstr(json, "\"key_assurance\":\"software\"") != NULL);
  posture_buf_free(claims);
  posture_result_free(result);
  posture_verifier_free(verifier);

  /* The same evidence under a stricter policy: verified, but denied, with the reason. */
  verifier = new_verifier(jwk, deny, TEST_AUDIENCE);
  result = NULL;
  CHECK_STATUS(verify(verifier, evidence, TEST_NONCE, &result), POSTURE_STATUS_OK);
  CHECK_STATUS(posture_result_decision(result, &decision), POSTURE_STATUS_OK);
  CHECK(decision == POSTURE_DECISION_DENY);
  CHECK_STATUS(posture_result_reasons_json(result, &reasons), POSTURE_STATUS_OK);
  json = (const char *)posture_buf_data(reasons);
  CHECK(strstr(json, "\"rule\":\"required_checks\"") != NULL);
  CHECK(strstr(json, "\"finding\":\"firewall\"") != NULL);
  CHECK(strstr(json, "\"remediation\"") != NULL);
  posture_buf_free(reasons);
  posture_result_free(result);
  posture_verifier_free(verifier);
  puts("ok happy_path");
}

static void test_rejections(text jwk, text other, text allow, text evidence, text expired,
                            text wrong_key) {
  posture_verifier *verifier = new_verifier(jwk, allow, TEST_AUDIENCE);

  /* Tampered: one payload character changed; the signature no longer matches. */
  char *tampered = malloc(evidence.len + 1);
  CHECK(tampered != NULL);
  memcpy(tampered, evidence.data, evidence.len + 1);
  char *payload = strchr(tampered, '.');
  CHECK(payload != NULL);
  char *middle = payload + (strchr(payload + 1, '.') - payload) / 2;
  *middle = (*middle == 'A') ? 'B' : 'A';
  text tampered_text = {tampered, evidence.len};
  CHECK(verify_status(verifier, tampered_text, TEST_NONCE) ==
        POSTURE_STATUS_EVIDENCE_BAD_SIGNATURE);
  free(tampered);

  CHECK_STATUS(verify_status(verifier, expired, TEST_NONCE), POSTURE_STATUS_EVIDENCE_EXPIRED);
  CHECK_STATUS(verify_status(verifier, evidence, "another-nonce-0002"),
               POSTURE_STATUS_EVIDENCE_NONCE_MISMATCH);
  CHECK_STATUS(verify_status(verifier, wrong_key, TEST_NONCE),
               POSTURE_STATUS_EVIDENCE_UNKNOWN_KEY);
  posture_verifier_free(verifier);

  /* Trusting only key B, evidence signed by A is refused. */
  verifier = new_verifier(other, allow, TEST_AUDIENCE);
  CHECK_STATUS(verify_status(verifier, evidence, TEST_NONCE),
               POSTURE_STATUS_EVIDENCE_UNKNOWN_KEY);
  posture_verifier_free(verifier);

  /* A verifier with another name refuses evidence addressed to TEST_AUDIENCE. */
  verifier = new_verifier(jwk, allow, "vpn.example");
  CHECK_STATUS(verify_status(verifier, evidence, TEST_NONCE),
               POSTURE_STATUS_EVIDENCE_AUDIENCE_MISMATCH);
  posture_verifier_free(verifier);
  puts("ok rejections");
}

static void test_garbage(text jwk, text allow) {
  posture_verifier *verifier = new_verifier(jwk, allow, TEST_AUDIENCE);
  static const char *inputs[] = {
      "", ".", "..", "a.b.c", "not a jws at all", "e30.e30.", "e30.e30.e30",
      "eyJhbGciOiJub25lIn0.e30.", /* alg none */
      "\xff\xfe\x00\x01.\x80.\x81",
  };
  for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
    text t = {(char *)inputs[i], strlen(inputs[i])};
    posture_status status = verify_status(verifier, t, TEST_NONCE);
    CHECK(status >= POSTURE_STATUS_EVIDENCE_TOO_LARGE && status <= 299);
  }
  /* Deterministic pseudo-random bytes, with and without dots. */
  uint32_t state = 12345;
  uint8_t random_bytes[4096];
  for (int round = 0; round < 64; round++) {
    size_t len = 1 + (size_t)(round * 61) % sizeof random_bytes;
    for (size_t i = 0; i < len; i++) {
      state = state * 1103515245u + 12345u;
      random_bytes[i] = (uint8_t)(state >> 16);
      if (round % 2 == 0 && i % 97 == 5) random_bytes[i] = '.';
    }
    text t = {(char *)random_bytes, len};
    posture_status status = verify_status(verifier, t, TEST_NONCE);
    CHECK(status >= POSTURE_STATUS_EVIDENCE_TOO_LARGE && status <= 299);
  }
  /* Oversized: one byte over the limit, and a megabyte. */
  size_t big_len = 1024 * 1024;
  char *big = malloc(big_len);
  CHECK(big != NULL);
  memset(big, 'e', big_len);
  text over = {big, POSTURE_MAX_EVIDENCE_BYTES + 1};
  CHECK_STATUS(verify_status(verifier, over, TEST_NONCE), POSTURE_STATUS_EVIDENCE_TOO_LARGE);
  text mega = {big, big_len};
  CHECK_STATUS(verify_status(verifier, mega, TEST_NONCE), POSTURE_STATUS_EVIDENCE_TOO_LARGE);
  /* An oversized nonce is refused before anything else. */
  text ok = {big, 10};
  posture_result *result = NULL;
  CHECK_STATUS(posture_verify(verifier, u8(ok.data), ok.len, u8(big), POSTURE_MAX_NAME_BYTES + 1,
                              &result),
               POSTURE_STATUS_INPUT_TOO_LARGE);
  free(big);
  posture_verifier_free(verifier);
  puts("ok garbage");
}

typedef struct {
  const posture_verifier *verifier;
  text evidence;
  int failures;
} thread_args;

static void *verify_many(void *arg) {
  thread_args *args = arg;
  for (int i = 0; i < VERIFICATIONS_PER_THREAD; i++) {
    posture_result *result = NULL;
    posture_decision decision = 0;
    if (verify(args->verifier, args->evidence, TEST_NONCE, &result) != POSTURE_STATUS_OK ||
        posture_result_decision(result, &decision) != POSTURE_STATUS_OK ||
        decision != POSTURE_DECISION_ALLOW) {
      args->failures++;
    }
    posture_result_free(result);
    /* Interleave a rejection, so failures and successes share the handle too. */
    if (verify_status(args->verifier, args->evidence, "wrong-nonce-000") !=
        POSTURE_STATUS_EVIDENCE_NONCE_MISMATCH) {
      args->failures++;
    }
  }
  return NULL;
}

static void test_threads(text jwk, text allow, text evidence) {
  posture_verifier *verifier = new_verifier(jwk, allow, TEST_AUDIENCE);
  pthread_t threads[THREADS];
  thread_args args[THREADS];
  for (int i = 0; i < THREADS; i++) {
    args[i].verifier = verifier;
    args[i].evidence = evidence;
    args[i].failures = 0;
    CHECK(pthread_create(&threads[i], NULL, verify_many, &args[i]) == 0);
  }
  int failures = 0;
  for (int i = 0; i < THREADS; i++) {
    CHECK(pthread_join(threads[i], NULL) == 0);
    failures += args[i].failures;
  }
  CHECK(failures == 0);
  posture_verifier_free(verifier);
  printf("ok threads (%d threads x %d verifications, one handle)\n", THREADS,
         VERIFICATIONS_PER_THREAD * 2);
}

static void test_agent(text allow) {
  const char *base = getenv("POSTURE_TEST_DIR");
  char dir[4096];
  CHECK(base != NULL);
  snprintf(dir, sizeof dir, "%s/keydir", base);

  /* A key directory that others can read is refused, and nothing is created in it. */
  char open_dir[4096];
  snprintf(open_dir, sizeof open_dir, "%s/open-keydir", base);
  CHECK(mkdir(open_dir, 0755) == 0);
  CHECK(chmod(open_dir, 0755) == 0); /* whatever the umask */
  posture_key *key = NULL;
  CHECK_STATUS(posture_key_software_load_or_create(u8(open_dir), strlen(open_dir), &key),
               POSTURE_STATUS_KEY_ERROR);
  CHECK(key == NULL);
  CHECK_STATUS(posture_key_software_load_or_create(u8(dir), 0, &key),
               POSTURE_STATUS_INVALID_PARAMETER);

  CHECK_STATUS(posture_key_software_load_or_create(u8(dir), strlen(dir), &key),
               POSTURE_STATUS_OK);
  posture_buf *jwk = NULL;
  CHECK_STATUS(posture_key_public_jwk(key, NULL), POSTURE_STATUS_NULL_PARAMETER);
  CHECK_STATUS(posture_key_public_jwk(key, &jwk), POSTURE_STATUS_OK);
  CHECK(strstr((const char *)posture_buf_data(jwk), "\"crv\":\"P-256\"") != NULL);

  const char *bad_config = "no_such_setting = 1";
  posture_buf *report = NULL;
  posture_buf *compliance = NULL;
  CHECK_STATUS(posture_collect_json(u8(bad_config), strlen(bad_config), &report),
               POSTURE_STATUS_INVALID_CONFIG);
  CHECK_STATUS(posture_agent_collect_json(u8(bad_config), strlen(bad_config), &report,
                                          &compliance),
               POSTURE_STATUS_INVALID_CONFIG);
  CHECK(report == NULL && compliance == NULL);
  /* The agent collects from the fixture device tree its config names ([daemon] root),
     never from this machine: what it reads is fixed, so nothing can be cut off by a
     timeout on a loaded machine. The timeout is generous for valgrind. */
  text agent_config = load("agent.toml");
  CHECK_STATUS(posture_agent_collect_json(u8(agent_config.data), agent_config.len, &report,
                                          &compliance),
               POSTURE_STATUS_OK);
  const char *report_json = (const char *)posture_buf_data(report);
  CHECK(strstr(report_json, "\"report_version\"") != NULL);
  CHECK(strstr(report_json, "\"id\":\"os\"") != NULL);
  CHECK(strstr(report_json, "Debian GNU/Linux 12") != NULL);
  const char *compliance_json = (const char *)posture_buf_data(compliance);
  /* The fixture device runs checks that cannot tell (no live state): not compliant. */
  CHECK(strstr(compliance_json, "\"compliant\":false") != NULL);
  CHECK(strstr(compliance_json, "\"reasons\":[{") != NULL);
  posture_buf_free(compliance);

  /* The device key as the config's [key] table says (a software key here, in the state
     directory the config names). */
  posture_key *configured = NULL;
  CHECK_STATUS(posture_key_open(u8(bad_config), strlen(bad_config), &configured),
               POSTURE_STATUS_INVALID_CONFIG);
  CHECK_STATUS(posture_key_open(u8(agent_config.data), agent_config.len, &configured),
               POSTURE_STATUS_OK);
  posture_buf *configured_jwk = NULL;
  CHECK_STATUS(posture_key_public_jwk(configured, &configured_jwk), POSTURE_STATUS_OK);
  CHECK(strstr((const char *)posture_buf_data(configured_jwk), "\"crv\":\"P-256\"") != NULL);
  posture_buf_free(configured_jwk);
  posture_key_free(configured);
  free(agent_config.data);

  posture_buf *evidence = NULL;
  const uint8_t *nonce = u8(TEST_NONCE);
  size_t nonce_len = strlen(TEST_NONCE);
  const uint8_t *aud = u8(TEST_AUDIENCE);
  size_t aud_len = strlen(TEST_AUDIENCE);
  CHECK_STATUS(posture_evidence_sign(key, u8("{}"), 2, nonce, nonce_len, aud, aud_len, 300,
                                     &evidence),
               POSTURE_STATUS_INVALID_REPORT);
  CHECK_STATUS(posture_evidence_sign(key, posture_buf_data(report), posture_buf_len(report), nonce,
                                     nonce_len, aud, aud_len, 0, &evidence),
               POSTURE_STATUS_INVALID_PARAMETER);
  CHECK_STATUS(posture_evidence_sign(key, posture_buf_data(report), posture_buf_len(report),
                                     u8("short"), 5, aud, aud_len, 300, &evidence),
               POSTURE_STATUS_INVALID_PARAMETER);
  /* NULL for each pointer argument (the key was checked in test_null_arguments). */
  const uint8_t *r = posture_buf_data(report);
  size_t r_len = posture_buf_len(report);
  const posture_status null = POSTURE_STATUS_NULL_PARAMETER;
  CHECK_STATUS(posture_evidence_sign(key, NULL, r_len, nonce, nonce_len, aud, aud_len, 300, &evidence), null);
  CHECK_STATUS(posture_evidence_sign(key, r, r_len, NULL, nonce_len, aud, aud_len, 300, &evidence), null);
  CHECK_STATUS(posture_evidence_sign(key, r, r_len, nonce, nonce_len, NULL, aud_len, 300, &evidence), null);
  CHECK_STATUS(posture_evidence_sign(key, r, r_len, nonce, nonce_len, aud, aud_len, 300, NULL), null);
  CHECK(evidence == NULL);
  CHECK_STATUS(posture_evidence_sign(key, posture_buf_data(report), posture_buf_len(report), nonce,
                                     nonce_len, aud, aud_len, 300, &evidence),
               POSTURE_STATUS_OK);

  /* What the agent produced verifies with its own public key. */
  text jwk_text = {(char *)posture_buf_data(jwk), posture_buf_len(jwk)};
  posture_verifier *verifier = new_verifier(jwk_text, allow, TEST_AUDIENCE);
  text evidence_text = {(char *)posture_buf_data(evidence), posture_buf_len(evidence)};
  posture_result *result = NULL;
  CHECK_STATUS(verify(verifier, evidence_text, TEST_NONCE, &result), POSTURE_STATUS_OK);
  posture_buf *claims = NULL;
  CHECK_STATUS(posture_result_claims_json(result, &claims), POSTURE_STATUS_OK);
  CHECK(strstr((const char *)posture_buf_data(claims), "\"id\":\"os\"") != NULL);

  posture_buf_free(claims);
  posture_result_free(result);
  posture_verifier_free(verifier);
  posture_buf_free(evidence);
  posture_buf_free(report);
  posture_buf_free(jwk);
  posture_key_free(key);
  puts("ok agent");
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  text jwk = load("trusted.jwk"), pem = load("trusted.pem"), other = load("other.jwk");
  text allow = load("allow.toml"), deny = load("deny.toml");
  text evidence = load("evidence.jws"), expired = load("expired.jws");
  text wrong_key = load("wrong_key.jws");

  test_version();
  test_error_message();
  test_null_arguments(jwk, allow, evidence);
  test_verifier_construction(jwk, pem, allow);
  test_happy_path(jwk, allow, deny, evidence);
  test_rejections(jwk, other, allow, evidence, expired, wrong_key);
  test_garbage(jwk, allow);
  test_threads(jwk, allow, evidence);
  test_agent(allow);

  text all[] = {jwk, pem, other, allow, deny, evidence, expired, wrong_key};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i].data);
  puts("all tests passed");
  return 0;
}
