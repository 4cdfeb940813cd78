#pragma once

#include "spec/spec.h"
#include "util/error.h"

/* Runs every hook of `kind` in order with the state JSON on stdin, each
 * bounded by its timeout.  Fails on the first hook that fails. */
int silo_hooks_run(const struct silo_spec *spec, enum silo_hook_kind kind, const char *state_json, silo_error *err);
