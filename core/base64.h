/* RFC 4648 base64, as SASL (RFC 4954, RFC 3501, RFC 5034) uses it. */
#ifndef CORE_BASE64_H
#define CORE_BASE64_H

#include <stddef.h>

/* Length of the encoding of n bytes, without NUL. */
size_t base64_encoded_len(size_t n);
/* Writes base64_encoded_len(len)+1 bytes to out (NUL-terminated). */
void base64_encode(const void *data, size_t len, char *out);
/* Strict decoding: no whitespace, correct padding, canonical trailing bits.
 * out must hold (inlen/4)*3 bytes.  Returns the decoded length or -1. */
long base64_decode(const char *in, size_t inlen, unsigned char *out);
/* The 6-bit value of one character of the RFC 4648 §4 alphabet, or -1
 * (for decoders that must be lenient, such as MIME bodies). */
int base64_value(unsigned char c);

#endif
