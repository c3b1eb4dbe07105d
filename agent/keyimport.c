/*
 * The private key of a certificate response, from the protocol layer's
 * reading (cmpc_privkey_get) to what the token layer unwraps
 * (tok_unwrap_private): the algorithms by NID, nothing decrypted here.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/objects.h>

#include "agent/keyimport.h"

int agent_wrapped_from_privkey(const cmpc_privkey *k, tok_wrapped *ret_w, char *why,
			       size_t whylen)
{
	tok_wrapped w;

	memset(&w, 0, sizeof(w));
	if (k == NULL || k->kind != CMPC_PRIVKEY_ENCVALUE) {
		snprintf(why, whylen,
			 "the key comes in an EnvelopedData, whose content (a SignedData around "
			 "the key) no token unwraps as a key");
		return 0;
	}
	switch (k->symm_nid) {
	case NID_id_aes128_wrap_pad:
	case NID_id_aes192_wrap_pad:
	case NID_id_aes256_wrap_pad:
		w.enc = TOK_ENC_AES_KWP;
		break;
	case NID_aes_128_cbc:
	case NID_aes_192_cbc:
	case NID_aes_256_cbc:
		if (k->iv_len != sizeof(w.iv)) {
			snprintf(why, whylen, "its AES-CBC IV is %zu bytes long, not 16",
				 k->iv_len);
			return 0;
		}
		w.enc = TOK_ENC_AES_CBC_PAD;
		memcpy(w.iv, k->iv, sizeof(w.iv));
		break;
	default:
		snprintf(why, whylen,
			 "its symmAlg %s is neither AES key wrap with padding nor AES-CBC",
			 k->symm_nid != NID_undef ? OBJ_nid2sn(k->symm_nid) : "(unknown OID)");
		return 0;
	}
	if (k->keyenc_nid == NID_rsaEncryption) {
		w.kt = TOK_KT_RSA_PKCS1;
	} else if (k->keyenc_nid == NID_rsaesOaep && k->oaep_md_nid == NID_sha1) {
		w.kt = TOK_KT_RSA_OAEP_SHA1;
	} else if (k->keyenc_nid == NID_rsaesOaep && k->oaep_md_nid == NID_sha256) {
		w.kt = TOK_KT_RSA_OAEP_SHA256;
	} else {
		snprintf(why, whylen,
			 "its keyAlg is neither RSA PKCS#1 v1.5 nor RSAES-OAEP with SHA-1 or "
			 "SHA-256");
		return 0;
	}
	w.enc_cek = k->enc_symm_key;
	w.enc_cek_len = k->enc_symm_key_len;
	w.enc_key = k->enc_value;
	w.enc_key_len = k->enc_value_len;
	*ret_w = w;
	return 1;
}
