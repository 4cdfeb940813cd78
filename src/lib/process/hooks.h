#pragma once

#include "spec/spec.h"
#include "util/error.h"

/* Runs every hook of `kind` in order with the state JSON on stdin, each
 * bounded by its timeout.  Stops at the first hook that fails, except for
 * poststart and poststop, whose failures the spec makes warnings: those run
 * every hook and return the first failure. */
int silo_hooks_run(const struct silo_spec *spec, enum silo_hook_kind kind, const char *state_json, silo_error *err);
