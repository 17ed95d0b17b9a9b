/*
 * Verifications per second through the C API: `bench_verify THREADS ITERATIONS` verifies
 * $POSTURE_TEST_DIR/evidence.jws ITERATIONS times on each of THREADS threads sharing one
 * verifier handle, and prints "verifications_per_second <N>" (wall clock) and
 * "verifications_per_cpu_second <N>" (CPU time of the verifying threads). Run by
 * posture-ffi/benches/ffi_verify.rs next to the same verification called from Rust.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "posture.h"

#define NONCE "c-test-nonce-0001"
#define AUDIENCE "proxy.example"

static char *read_file(const char *name, size_t *len) {
  const char *dir = getenv("POSTURE_TEST_DIR");
  char path[4096];
  if (dir == NULL) exit(2);
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (f == NULL) exit(2);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *data = malloc((size_t)size + 1);
  if (data == NULL || fread(data, 1, (size_t)size, f) != (size_t)size) exit(2);
  data[size] = '\0';
  fclose(f);
  *len = (size_t)size;
  return data;
}

typedef struct {
  const posture_verifier *verifier;
  const char *evidence;
  size_t evidence_len;
  long iterations;
  long failures;
  double cpu_seconds;
} worker;

static double thread_cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void *run(void *arg) {
  worker *w = arg;
  double cpu_start = thread_cpu_seconds();
  for (long i = 0; i < w->iterations; i++) {
    posture_result *result = NULL;
    posture_decision decision = 0;
    if (posture_verify(w->verifier, (const uint8_t *)w->evidence, w->evidence_len,
                       (const uint8_t *)NONCE, strlen(NONCE), &result) != POSTURE_STATUS_OK ||
        posture_result_decision(result, &decision) != POSTURE_STATUS_OK ||
        decision != POSTURE_DECISION_ALLOW) {
      w->failures++;
    }
    posture_result_free(result);
  }
  w->cpu_seconds = thread_cpu_seconds() - cpu_start;
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: bench_verify THREADS ITERATIONS\n");
    return 2;
  }
  int threads = atoi(argv[1]);
  long iterations = atol(argv[2]);
  if (threads < 1 || threads > 1024 || iterations < 1) return 2;

  size_t keys_len, policy_len, evidence_len;
  char *keys = read_file("trusted.jwk", &keys_len);
  char *policy = read_file("allow.toml", &policy_len);
  char *evidence = read_file("evidence.jws", &evidence_len);
  posture_verifier *verifier = NULL;
  if (posture_verifier_new((const uint8_t *)keys, keys_len, (const uint8_t *)policy, policy_len,
                           (const uint8_t *)AUDIENCE, strlen(AUDIENCE), 0,
                           POSTURE_DEFAULT_SKEW_SECS, &verifier) != POSTURE_STATUS_OK) {
    return 2;
  }

  pthread_t *ids = calloc((size_t)threads, sizeof *ids);
  worker *workers = calloc((size_t)threads, sizeof *workers);
  if (ids == NULL || workers == NULL) return 2;
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (int i = 0; i < threads; i++) {
    workers[i] = (worker){verifier, evidence, evidence_len, iterations, 0, 0.0};
    if (pthread_create(&ids[i], NULL, run, &workers[i]) != 0) return 2;
  }
  long failures = 0;
  double cpu_seconds = 0.0;
  for (int i = 0; i < threads; i++) {
    pthread_join(ids[i], NULL);
    failures += workers[i].failures;
    cpu_seconds += workers[i].cpu_seconds;
  }
  clock_gettime(CLOCK_MONOTONIC, &end);
  double seconds = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
  if (failures != 0) {
    fprintf(stderr, "%ld verifications failed\n", failures);
    return 1;
  }
  double total = (double)threads * (double)iterations;
  printf("verifications_per_second %.1f\n", total / seconds);
  printf("verifications_per_cpu_second %.1f\n", total / cpu_seconds);

  posture_verifier_free(verifier);
  free(ids);
  free(workers);
  free(keys);
  free(policy);
  free(evidence);
  return 0;
}
