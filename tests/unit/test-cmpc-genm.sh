#!/bin/sh
# cmpc rr and genm: against the project's test CA (rr, caCerts, and what
# else it answers), and against a fixture CMP server that test-cmpc-genm
# forks itself (crafted genp values).  Starts the test CA on a free
# loopback port in a temporary directory and stops it afterwards.
set -u

NAME=test-cmpc-genm REF=genm-ref SECRET=genm-S3cret-Value
. "$(cd "${top_srcdir:-$(dirname "$0")/../..}" && pwd)/tests/unit/ca-runner.sh"
# ca: a second root with link certificates, a template; ca2: the same,
# but its root key update is forged.
start_ca ca --new-root --template "subject=/CN=tmpl/O=Example;key=ec:P-384"
T_CA_URL=http://127.0.0.1:$PORT/.well-known/cmp
start_ca ca2 --new-root --fault forged-root-update
T_CA2_URL=http://127.0.0.1:$PORT/.well-known/cmp

T_DIR=$T T_REF=$REF T_SECRET=$SECRET
T_CA_DIR=$T/ca T_CA_LOG=$T/ca.log T_CA2_DIR=$T/ca2
export T_DIR T_REF T_SECRET T_CA_URL T_CA_DIR T_CA_LOG T_CA2_URL T_CA2_DIR

run_prog ca ca2
