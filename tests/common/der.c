/* DER written octet by octet (der.h). */
#include "config.h"

#include <string.h>

#include "tests/common/der.h"

tder *tder_tlv(tder *out, unsigned char tag, const tder *c)
{
	tder t;
	size_t len = c != NULL ? c->n : 0;

	t.n = 0;
	t.b[t.n++] = tag;
	if (len < 128) {
		t.b[t.n++] = (unsigned char)len;
	} else if (len < 256) {
		t.b[t.n++] = 0x81;
		t.b[t.n++] = (unsigned char)len;
	} else {
		t.b[t.n++] = 0x82;
		t.b[t.n++] = (unsigned char)(len >> 8);
		t.b[t.n++] = (unsigned char)len;
	}
	if (len > 0 && t.n + len <= sizeof(t.b))
		memcpy(t.b + t.n, c->b, len);
	t.n += len;
	*out = t;
	return out;
}

tder *tder_raw(tder *out, const void *p, size_t n)
{
	if (n > 0)
		memcpy(out->b, p, n);
	out->n = n;
	return out;
}

tder *tder_cat(tder *out, const tder *a, const tder *b)
{
	tder t = *a;

	if (t.n + b->n <= sizeof(t.b))
		memcpy(t.b + t.n, b->b, b->n);
	t.n += b->n;
	*out = t;
	return out;
}

tder *tder_bits(tder *out, const unsigned char *p, size_t n)
{
	tder c;

	c.b[0] = 0;
	memcpy(c.b + 1, p, n);
	c.n = n + 1;
	return tder_tlv(out, 0x03, &c);
}

tder *tder_certrep(tder *out, unsigned char bodytag, int rid, const tder *cert, const tder *pk)
{
	tder a, b, c, t, hdr, ckp, resp;
	unsigned char ridb[3] = {0x02, 0x01, (unsigned char)rid};
	static const unsigned char status[] = {0x30, 0x03, 0x02, 0x01, 0x00};
	static const unsigned char name[] = {0xa4, 0x02, 0x30, 0x00};

	/* header: pvno 2, sender and recipient empty directoryNames */
	tder_raw(&t, "\x02\x01\x02", 3);
	tder_cat(&t, &t, tder_raw(&a, name, sizeof(name)));
	tder_cat(&t, &t, tder_raw(&a, name, sizeof(name)));
	tder_tlv(&hdr, 0x30, &t);
	tder_tlv(&ckp, 0xa0, cert); /* certOrEncCert: certificate [0] */
	if (pk != NULL)
		tder_cat(&ckp, &ckp, tder_tlv(&a, 0xa0, pk)); /* privateKey [0] EXPLICIT */
	tder_tlv(&c, 0x30, &ckp);
	tder_cat(&t, tder_raw(&a, ridb, sizeof(ridb)), tder_raw(&b, status, sizeof(status)));
	tder_cat(&t, &t, &c);
	tder_tlv(&resp, 0x30, &t);
	tder_tlv(&t, 0x30, tder_tlv(&a, 0x30, &resp)); /* CertRepMessage { response } */
	tder_tlv(&b, bodytag, &t);
	return tder_tlv(out, 0x30, tder_cat(&t, &hdr, &b));
}
