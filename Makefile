# Makefile for llm_usage (PGXS)
#
#   make && make install                       build and install as root
#   bash test/run-all.sh                       the whole test suite
#
EXTENSION   = llm_usage
MODULE_big  = llm_usage
OBJS        = src/llm_usage.o src/caller.o src/build_info.o src/shmem.o src/quota_shmem.o src/session_cache.o src/quota.o src/track.o src/crypto.o \
              src/http.o src/provider.o src/provider_openai.o src/provider_anthropic.o \
              src/cron.o src/collector.o src/worker.o src/smtp.o src/delivery.o
DATA        = sql/llm_usage--1.0.sql sql/llm_usage--1.0--1.1.sql sql/llm_usage--1.1--1.2.sql
PGFILEDESC  = "llm_usage - LLM usage metering, quotas and cost"

PG_CPPFLAGS = -I$(srcdir)/src
SHLIB_LINK  = -lcurl -lssl -lcrypto

# pg_regress suites; inputs in sql/, expected outputs in expected/.
REGRESS     = setup tenants quotas quota_periods tracking rollups queries \
              audit credits security keys alerts rollup_random
REGRESS_OPTS = --inputdir=$(srcdir) --dbname=llm_usage_regress

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# the regression list, for test/run-all.sh
print-regress:
	@echo $(REGRESS)
.PHONY: print-regress
