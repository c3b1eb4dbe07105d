#!/bin/sh
# Banned C functions (see CONTRIBUTING.md); prints offenders, exits 1 if any.
cd "${1:-.}" || exit 2
found=$(grep -n -E '\b(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|gets)[[:space:]]*\(' \
	$(find agent pkcs11 cmp tests -name '*.c' -o -name '*.h' | sort) | grep -v -E '\bsnprintf|vsnprintf')
if [ -n "$found" ]; then
	echo "$found"
	exit 1
fi
exit 0
