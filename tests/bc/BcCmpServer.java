/*
 * BcCmpServer: a second, independent CMP server for the test suite, built on
 * Bouncy Castle's CMP and CRMF classes (libbcpkix-java, Debian bookworm:
 * 1.72) instead of OpenSSL's.  The project's test CA and the `openssl cmp`
 * mock share libcrypto with p11enroll, so a bug on both sides of OpenSSL's
 * CMP code would pass there; here every message p11enroll sends is parsed,
 * verified and answered by other code.
 *
 * A real CA, small on purpose: HTTP POST application/pkixcmp (RFC 6712) on
 * 127.0.0.1; ir, cr, kur and p10cr (RFC 4210 5.3.1-5.3.5, RFC 9483 4.1) with
 * the signature POP (or the CSR's signature) checked and a real certificate
 * issued for the requested key and subject; certConf -> pkiConf with the certHash checked; rr -> rp
 * (RFC 9483 4.2); genm caCerts -> genp (RFC 9483 4.3.1); delayed issuance
 * with pollReq/pollRep (RFC 9483 4.4); error from the client -> pkiConf.
 * Responses are signed (by the CA certificate, by a CMP signer certificate
 * with id-kp-cmcRA, or -- to test that the client refuses it -- by a plain
 * end-entity certificate) or, for MAC-protected requests, protected by PBM
 * (RFC 4210 5.1.3.1) with the shared secret.
 *
 * What it did goes to DIR/log, one line per message ("TYPE prot=... ->
 * RESPONSE outcome"), and DIR/index ("issued SERIAL TYPE SUBJECT",
 * "confirmed SERIAL", "rejected SERIAL", "revoked SERIAL REASON"), written
 * before the response is sent: a test counts outcomes from the peer's own
 * records, not from the client's output.  The index is read back at start,
 * so a restarted peer still knows what it issued and revoked.
 *
 * Usage: see usage() below; tests/bcpeer.sh runs it.
 */

import java.io.ByteArrayOutputStream;
import java.io.FileWriter;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.Reader;
import java.io.Writer;
import java.math.BigInteger;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.Security;
import java.security.spec.ECGenParameterSpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Date;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import org.bouncycastle.asn1.ASN1Encodable;
import org.bouncycastle.asn1.ASN1Encoding;
import org.bouncycastle.asn1.ASN1Integer;
import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.ASN1OctetString;
import org.bouncycastle.asn1.DERSequence;
import org.bouncycastle.asn1.cmp.CMPCertificate;
import org.bouncycastle.asn1.cmp.CMPObjectIdentifiers;
import org.bouncycastle.asn1.cmp.CertConfirmContent;
import org.bouncycastle.asn1.cmp.CertOrEncCert;
import org.bouncycastle.asn1.cmp.CertRepMessage;
import org.bouncycastle.asn1.cmp.CertResponse;
import org.bouncycastle.asn1.cmp.CertifiedKeyPair;
import org.bouncycastle.asn1.cmp.ErrorMsgContent;
import org.bouncycastle.asn1.cmp.GenMsgContent;
import org.bouncycastle.asn1.cmp.GenRepContent;
import org.bouncycastle.asn1.cmp.InfoTypeAndValue;
import org.bouncycastle.asn1.cmp.PBMParameter;
import org.bouncycastle.asn1.cmp.PKIBody;
import org.bouncycastle.asn1.cmp.PKIFailureInfo;
import org.bouncycastle.asn1.cmp.PKIFreeText;
import org.bouncycastle.asn1.cmp.PKIHeader;
import org.bouncycastle.asn1.cmp.PKIMessage;
import org.bouncycastle.asn1.cmp.PKIStatus;
import org.bouncycastle.asn1.cmp.PKIStatusInfo;
import org.bouncycastle.asn1.cmp.PollRepContent;
import org.bouncycastle.asn1.cmp.PollReqContent;
import org.bouncycastle.asn1.cmp.RevDetails;
import org.bouncycastle.asn1.cmp.RevRepContentBuilder;
import org.bouncycastle.asn1.cmp.RevReqContent;
import org.bouncycastle.asn1.crmf.AttributeTypeAndValue;
import org.bouncycastle.asn1.crmf.CertId;
import org.bouncycastle.asn1.crmf.CertReqMessages;
import org.bouncycastle.asn1.crmf.CertReqMsg;
import org.bouncycastle.asn1.crmf.CertTemplate;
import org.bouncycastle.asn1.crmf.Controls;
import org.bouncycastle.asn1.crmf.POPOSigningKey;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.CRLReason;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.Extensions;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.asn1.x509.SubjectKeyIdentifier;
import org.bouncycastle.asn1.x509.SubjectPublicKeyInfo;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.cmp.CMPException;
import org.bouncycastle.cert.cmp.CertificateConfirmationContent;
import org.bouncycastle.cert.cmp.CertificateStatus;
import org.bouncycastle.cert.cmp.GeneralPKIMessage;
import org.bouncycastle.cert.cmp.ProtectedPKIMessage;
import org.bouncycastle.cert.cmp.ProtectedPKIMessageBuilder;
import org.bouncycastle.cert.crmf.CertificateRequestMessage;
import org.bouncycastle.cert.crmf.PKMACBuilder;
import org.bouncycastle.cert.crmf.jcajce.JcePKMACValuesCalculator;
import org.bouncycastle.cert.jcajce.JcaX509ExtensionUtils;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.openssl.PEMKeyPair;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.operator.ContentSigner;
import org.bouncycastle.operator.ContentVerifierProvider;
import org.bouncycastle.operator.DefaultDigestAlgorithmIdentifierFinder;
import org.bouncycastle.operator.MacCalculator;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.operator.jcajce.JcaContentVerifierProviderBuilder;
import org.bouncycastle.operator.jcajce.JcaDigestCalculatorProviderBuilder;
import org.bouncycastle.asn1.pkcs.Attribute;
import org.bouncycastle.asn1.pkcs.CertificationRequest;
import org.bouncycastle.asn1.pkcs.PKCSObjectIdentifiers;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.pkcs.PKCS10CertificationRequest;

public final class BcCmpServer {
	private static final String BC = BouncyCastleProvider.PROVIDER_NAME;
	/* RFC 6402: the EKUs that let a certificate speak for a CA (RFC 9483 3.5) */
	private static final ASN1ObjectIdentifier ID_KP_CMC_RA = new ASN1ObjectIdentifier("1.3.6.1.5.5.7.3.28");
	private static final int MAX_BODY = 1 << 20;
	/* RFC 9483 3.1: a senderNonce of at least 128 bits */
	private static final int MIN_NONCE = 16;

	/* ---- configuration ---- */
	private Path dir;
	private Path caCertFile;
	private Path caKeyFile;
	private Path portFile;
	private String ref;            // PBM reference value (senderKID)
	private char[] secret;         // PBM shared secret, or null: MAC requests are refused
	private String signerName = "ra";
	private boolean signAll;       // sign responses to MAC-protected requests too
	private int polls;             // pollRep answers before the certificate comes
	private int checkAfter = 1;
	private String rejectName;     // failInfo for every certificate request
	private int days = 30;
	private Path holdGate;         // certConf waits until this file exists

	/* ---- credentials ---- */
	private static final class Cred {
		final X509CertificateHolder cert;
		final PrivateKey key;
		final String name;

		Cred(String name, X509CertificateHolder cert, PrivateKey key) {
			this.name = name;
			this.cert = cert;
			this.key = key;
		}
	}

	private Cred ca;
	private Cred ra;
	private Cred signer;

	/* ---- state ---- */
	private final SecureRandom rnd = new SecureRandom();
	private final Set<BigInteger> issued = new HashSet<>();
	private final Set<BigInteger> revoked = new HashSet<>();

	/* A certificate request between its first message and certConf. */
	private static final class Txn {
		String reqType;            // ir, cr, kur, p10cr
		int repBody;               // PKIBody type of the answer: ip, cp, kup
		BigInteger certReqId;
		X500Name subject;
		SubjectPublicKeyInfo spki;
		Extension san;
		X509CertificateHolder cert; // once delivered
		int pollsLeft;
		boolean waiting;
		byte[] lastNonce;          // our last senderNonce: the next recipNonce
		String prot;               // who asked: follow-ups must come from them
	}

	private final Map<String, Txn> txns = new HashMap<>();

	/* What one incoming message was, how it was protected, and how its
	 * answer is to be protected. */
	private static final class Req {
		PKIMessage msg;
		PKIHeader hdr;
		String type = "?";
		boolean mac;               // PBM-protected, MAC verified
		X509CertificateHolder protCert; // signature-protected, verified
		String prot = "none";
		StringBuilder note = new StringBuilder();
	}

	/* A refusal: the message is answered with an error (or a rejection in the
	 * body type the request expects), and logged with its failInfo. */
	private static final class Refusal extends Exception {
		private static final long serialVersionUID = 1L;
		final int failInfo;
		final String failName;

		Refusal(int failInfo, String failName, String text) {
			super(text);
			this.failInfo = failInfo;
			this.failName = failName;
		}
	}

	private static Refusal refuse(String failName, String text) {
		return new Refusal(failInfoBit(failName), failName, text);
	}

	/* PKIFailureInfo's constants are named as in RFC 4210 (badPOP, ...) */
	private static int failInfoBit(String name) {
		try {
			return PKIFailureInfo.class.getField(name).getInt(null);
		} catch (ReflectiveOperationException e) {
			throw new IllegalArgumentException("unknown failInfo name: " + name);
		}
	}

	/* ------------------------------------------------------------------ */

	private static void usage(PrintStream out) {
		out.println("usage: java BcCmpServer --dir DIR --port-file FILE [options]\n"
			+ "A CMP server (Bouncy Castle) on 127.0.0.1, an ephemeral port written\n"
			+ "atomically to FILE once it accepts connections.\n"
			+ "  --dir DIR            state: ca.pem/ca.key (unless given), ra.pem/key (cmcRA),\n"
			+ "                       ee.pem/key (no EKU), issued/SERIAL.pem, log, index\n"
			+ "  --ca-cert F --ca-key F  the CA (loaded, or created when both are absent)\n"
			+ "  --ref REF --secret-file F  PBM reference value and shared secret (first line)\n"
			+ "  --signer ca|ra|ee    who signs signed responses (default ra)\n"
			+ "  --sign-all           sign responses to MAC-protected requests too\n"
			+ "  --poll N             answer certificate requests 'waiting', then N pollRep\n"
			+ "  --check-after S      checkAfter of each pollRep (default 1)\n"
			+ "  --reject FAILINFO    reject every certificate request with FAILINFO\n"
			+ "  --days N             validity of issued certificates (default 30)\n"
			+ "  --hold-certconf F    answer a certConf only once file F exists (a test\n"
			+ "                       looks at the token meanwhile; logged as 'held')");
	}

	public static void main(String[] args) {
		BcCmpServer s = new BcCmpServer();
		try {
			s.parseArgs(args);
		} catch (IllegalArgumentException e) {
			System.err.println("BcCmpServer: " + e.getMessage());
			usage(System.err);
			System.exit(2);
		}
		try {
			s.run();
		} catch (Exception e) {
			System.err.println("BcCmpServer: " + e);
			e.printStackTrace();
			System.exit(1);
		}
	}

	private void parseArgs(String[] a) {
		for (int i = 0; i < a.length; i++) {
			String o = a[i];
			if (o.equals("--sign-all")) {
				signAll = true;
				continue;
			}
			if (o.equals("--help")) {
				usage(System.out);
				System.exit(0);
			}
			if (i + 1 >= a.length)
				throw new IllegalArgumentException(o + " needs a value");
			String v = a[++i];
			switch (o) {
			case "--dir": dir = Paths.get(v); break;
			case "--ca-cert": caCertFile = Paths.get(v); break;
			case "--ca-key": caKeyFile = Paths.get(v); break;
			case "--port-file": portFile = Paths.get(v); break;
			case "--ref": ref = v; break;
			case "--secret-file": secret = readSecret(Paths.get(v)); break;
			case "--signer":
				if (!v.equals("ca") && !v.equals("ra") && !v.equals("ee"))
					throw new IllegalArgumentException("--signer is ca, ra or ee");
				signerName = v;
				break;
			case "--poll": polls = Integer.parseInt(v); break;
			case "--check-after": checkAfter = Integer.parseInt(v); break;
			case "--reject": failInfoBit(v); rejectName = v; break;
			case "--days": days = Integer.parseInt(v); break;
			case "--hold-certconf": holdGate = Paths.get(v); break;
			default: throw new IllegalArgumentException("unknown option " + o);
			}
		}
		if (dir == null || portFile == null)
			throw new IllegalArgumentException("--dir and --port-file are required");
		if (caCertFile == null)
			caCertFile = dir.resolve("ca.pem");
		if (caKeyFile == null)
			caKeyFile = dir.resolve("ca.key");
	}

	private static char[] readSecret(Path p) {
		try {
			String s = new String(Files.readAllBytes(p), StandardCharsets.UTF_8);
			int nl = s.indexOf('\n');
			return (nl >= 0 ? s.substring(0, nl) : s).toCharArray();
		} catch (IOException e) {
			throw new IllegalArgumentException("cannot read the secret file " + p + ": " + e.getMessage());
		}
	}

	private void run() throws Exception {
		Security.addProvider(new BouncyCastleProvider());
		Files.createDirectories(dir.resolve("issued"));
		loadCredentials();
		loadIndex();
		HttpServer http = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 16);
		http.createContext("/", this::serve);
		http.setExecutor(null); // one thread: the messages are handled in order
		http.start();
		// Ready signal: the port file appears complete (rename) only once the
		// socket accepts connections, so the test never races a free port.
		Path tmp = portFile.resolveSibling(portFile.getFileName() + ".tmp");
		Files.write(tmp, (http.getAddress().getPort() + "\n").getBytes(StandardCharsets.US_ASCII));
		Files.move(tmp, portFile, StandardCopyOption.ATOMIC_MOVE);
		System.err.println("BcCmpServer: listening on 127.0.0.1:" + http.getAddress().getPort());
	}

	/* ---- credentials: the CA (loaded or created), the RA and EE signers ---- */

	private void loadCredentials() throws Exception {
		boolean haveCert = Files.exists(caCertFile), haveKey = Files.exists(caKeyFile);
		if (haveCert != haveKey)
			throw new IOException("only one of " + caCertFile + " and " + caKeyFile + " exists");
		if (haveCert) {
			ca = new Cred("ca", readCert(caCertFile), readKey(caKeyFile));
		} else {
			// RSA for the CA, EC for the signers: responses signed both ways.
			KeyPair kp = genKey("rsa");
			X500Name name = new X500Name("O=p11enroll BC peer,CN=BC Test CA");
			SubjectPublicKeyInfo spki = SubjectPublicKeyInfo.getInstance(kp.getPublic().getEncoded());
			X509CertificateHolder c = makeCert(name, null, kp.getPrivate(), name, spki, 3650, true, null, null);
			writePem(caKeyFile, kp.getPrivate());
			writePem(caCertFile, c);
			ca = new Cred("ca", c, kp.getPrivate());
		}
		ra = loadOrIssue("ra", "O=p11enroll BC peer,CN=BC CMP Signer", ID_KP_CMC_RA);
		Cred ee = loadOrIssue("ee", "O=p11enroll BC peer,CN=BC Device", null);
		signer = signerName.equals("ca") ? ca : signerName.equals("ra") ? ra : ee;
	}

	private Cred loadOrIssue(String name, String dn, ASN1ObjectIdentifier eku) throws Exception {
		Path cf = dir.resolve(name + ".pem"), kf = dir.resolve(name + ".key");
		if (Files.exists(cf) && Files.exists(kf)) {
			X509CertificateHolder c = readCert(cf);
			// A CA given anew makes the old signers useless: issue new ones.
			if (c.getIssuer().equals(ca.cert.getSubject()) && c.isSignatureValid(verifierFor(ca.cert)))
				return new Cred(name, c, readKey(kf));
		}
		KeyPair kp = genKey("ec");
		SubjectPublicKeyInfo spki = SubjectPublicKeyInfo.getInstance(kp.getPublic().getEncoded());
		X509CertificateHolder c = makeCert(ca.cert.getSubject(), ca.cert, ca.key, new X500Name(dn), spki, 3650,
			false, eku, null);
		writePem(kf, kp.getPrivate());
		writePem(cf, c);
		return new Cred(name, c, kp.getPrivate());
	}

	private static KeyPair genKey(String type) throws Exception {
		KeyPairGenerator g;
		if (type.equals("rsa")) {
			g = KeyPairGenerator.getInstance("RSA", BC);
			g.initialize(2048);
		} else {
			g = KeyPairGenerator.getInstance("EC", BC);
			g.initialize(new ECGenParameterSpec("P-256"));
		}
		return g.generateKeyPair();
	}

	private static X509CertificateHolder readCert(Path p) throws IOException {
		try (Reader r = Files.newBufferedReader(p); PEMParser pp = new PEMParser(r)) {
			Object o = pp.readObject();
			if (!(o instanceof X509CertificateHolder))
				throw new IOException(p + " holds no PEM certificate");
			return (X509CertificateHolder) o;
		}
	}

	private static PrivateKey readKey(Path p) throws IOException {
		try (Reader r = Files.newBufferedReader(p); PEMParser pp = new PEMParser(r)) {
			Object o = pp.readObject();
			JcaPEMKeyConverter conv = new JcaPEMKeyConverter().setProvider(BC);
			if (o instanceof PEMKeyPair)
				return conv.getKeyPair((PEMKeyPair) o).getPrivate();
			if (o instanceof PrivateKeyInfo)
				return conv.getPrivateKey((PrivateKeyInfo) o);
			throw new IOException(p + " holds no unencrypted PEM private key");
		}
	}

	/* Atomically (rename); a private key readable by its owner only, as
	 * p11enroll wants of --protection-key. */
	private static void writePem(Path p, Object o) throws IOException {
		Path tmp = p.resolveSibling(p.getFileName() + ".tmp");
		Files.deleteIfExists(tmp);
		if (o instanceof PrivateKey)
			Files.createFile(tmp, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
		try (Writer w = Files.newBufferedWriter(tmp); JcaPEMWriter pw = new JcaPEMWriter(w)) {
			pw.writeObject(o);
		}
		Files.move(tmp, p, StandardCopyOption.ATOMIC_MOVE);
	}

	private static String sigAlg(PrivateKey k) {
		return k.getAlgorithm().startsWith("RSA") ? "SHA256withRSA" : "SHA256withECDSA";
	}

	private static ContentVerifierProvider verifierFor(X509CertificateHolder c) throws Exception {
		return new JcaContentVerifierProviderBuilder().setProvider(BC).build(c);
	}

	/* A serial of exactly 127 bits: positive, no leading zero byte, the same
	 * 32 hex digits as `openssl x509 -serial` prints. */
	private BigInteger newSerial() {
		BigInteger s;
		do {
			s = new BigInteger(126, rnd).setBit(126);
		} while (issued.contains(s));
		return s;
	}

	private static String hex(BigInteger s) {
		return s.toString(16).toUpperCase();
	}

	private X509CertificateHolder makeCert(X500Name issuer, X509CertificateHolder issuerCert, PrivateKey issuerKey,
			X500Name subject, SubjectPublicKeyInfo spki, int validDays, boolean isCa, ASN1ObjectIdentifier eku,
			Extension san) throws Exception {
		long now = System.currentTimeMillis();
		X509v3CertificateBuilder b = new X509v3CertificateBuilder(issuer, newSerial(), new Date(now - 60_000L),
			new Date(now + validDays * 86_400_000L), subject, spki);
		JcaX509ExtensionUtils u = new JcaX509ExtensionUtils();
		b.addExtension(Extension.basicConstraints, true, new BasicConstraints(isCa));
		// The CA signs CMP responses too (--signer ca): digitalSignature.
		b.addExtension(Extension.keyUsage, true, new KeyUsage(isCa
			? KeyUsage.keyCertSign | KeyUsage.cRLSign | KeyUsage.digitalSignature
			: KeyUsage.digitalSignature));
		b.addExtension(Extension.subjectKeyIdentifier, false, u.createSubjectKeyIdentifier(spki));
		if (issuerCert != null)
			b.addExtension(Extension.authorityKeyIdentifier, false, u.createAuthorityKeyIdentifier(issuerCert));
		if (eku != null)
			b.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(KeyPurposeId.getInstance(eku)));
		if (san != null)
			b.addExtension(san);
		ContentSigner cs = new JcaContentSignerBuilder(sigAlg(issuerKey)).setProvider(BC).build(issuerKey);
		return b.build(cs);
	}

	/* ---- the log and the index ---- */

	private void log(String line) {
		appendLine(dir.resolve("log"), line);
		System.err.println("BcCmpServer: " + line);
	}

	private void index(String line) {
		appendLine(dir.resolve("index"), line);
	}

	/* Opened per line in append mode: a test may truncate the file between
	 * cases without the peer writing behind its back. */
	private static void appendLine(Path p, String line) {
		try (FileWriter w = new FileWriter(p.toFile(), StandardCharsets.UTF_8, true)) {
			w.write(line + "\n");
		} catch (IOException e) {
			System.err.println("BcCmpServer: cannot write " + p + ": " + e.getMessage());
		}
	}

	private void loadIndex() throws IOException {
		Path p = dir.resolve("index");
		if (!Files.exists(p))
			return;
		for (String l : Files.readAllLines(p, StandardCharsets.UTF_8)) {
			String[] f = l.split(" ");
			if (f.length < 2)
				continue;
			if (f[0].equals("issued"))
				issued.add(new BigInteger(f[1], 16));
			else if (f[0].equals("revoked") || f[0].equals("rejected"))
				revoked.add(new BigInteger(f[1], 16));
		}
	}

	/* ---- HTTP (RFC 6712) ---- */

	private void serve(HttpExchange ex) throws IOException {
		try {
			String ct = ex.getRequestHeaders().getFirst("Content-Type");
			if (!ex.getRequestMethod().equals("POST")) {
				log("http " + ex.getRequestMethod() + " -> 405");
				ex.sendResponseHeaders(405, -1);
				return;
			}
			if (ct == null || !ct.trim().toLowerCase().startsWith("application/pkixcmp")) {
				log("http content-type " + ct + " -> 415");
				ex.sendResponseHeaders(415, -1);
				return;
			}
			byte[] body = readBody(ex.getRequestBody());
			if (body == null) {
				log("http body over " + MAX_BODY + " bytes -> 413");
				ex.sendResponseHeaders(413, -1);
				return;
			}
			byte[] rsp = handle(body);
			ex.getResponseHeaders().set("Content-Type", "application/pkixcmp");
			ex.sendResponseHeaders(200, rsp.length);
			try (OutputStream os = ex.getResponseBody()) {
				os.write(rsp);
			}
		} catch (RuntimeException e) {
			log("internal error " + e);
			e.printStackTrace();
			ex.sendResponseHeaders(500, -1);
		} finally {
			ex.close();
		}
	}

	private static byte[] readBody(InputStream in) throws IOException {
		ByteArrayOutputStream b = new ByteArrayOutputStream();
		byte[] buf = new byte[8192];
		int n;
		while ((n = in.read(buf)) > 0) {
			if (b.size() + n > MAX_BODY)
				return null;
			b.write(buf, 0, n);
		}
		return b.toByteArray();
	}

	/* ---- CMP ---- */

	private static final String[] BODY_NAMES = { "ir", "ip", "cr", "cp", "p10cr", "popdecc", "popdecr", "kur",
		"kup", "krr", "krp", "rr", "rp", "ccr", "ccp", "ckuann", "cann", "rann", "crlann", "pkiconf", "nested",
		"genm", "genp", "error", "certConf", "pollReq", "pollRep" };

	private static String bodyName(int t) {
		return t >= 0 && t < BODY_NAMES.length ? BODY_NAMES[t] : "body" + t;
	}

	private synchronized byte[] handle(byte[] der) {
		Req r = new Req();
		try {
			r.msg = PKIMessage.getInstance(der);
			r.hdr = r.msg.getHeader();
			r.type = bodyName(r.msg.getBody().getType());
		} catch (RuntimeException e) {
			// Not even a PKIMessage: nothing to answer in kind; a signed error.
			r.type = "garbage(" + der.length + " bytes)";
			r.msg = null;
			r.hdr = null;
			return errorFor(r, refuse("badDataFormat", "not a DER PKIMessage"));
		}
		try {
			checkHeader(r);
			checkProtection(r);
			switch (r.msg.getBody().getType()) {
			case PKIBody.TYPE_INIT_REQ:
				return certRequest(r, PKIBody.TYPE_INIT_REP);
			case PKIBody.TYPE_CERT_REQ:
			case PKIBody.TYPE_P10_CERT_REQ:
				return certRequest(r, PKIBody.TYPE_CERT_REP);
			case PKIBody.TYPE_KEY_UPDATE_REQ:
				return certRequest(r, PKIBody.TYPE_KEY_UPDATE_REP);
			case PKIBody.TYPE_POLL_REQ:
				return pollRequest(r);
			case PKIBody.TYPE_CERT_CONFIRM:
				return certConf(r);
			case PKIBody.TYPE_REVOCATION_REQ:
				return revocation(r);
			case PKIBody.TYPE_GEN_MSG:
				return genm(r);
			case PKIBody.TYPE_ERROR:
				return clientError(r);
			default:
				throw refuse("badRequest", "the BC peer does not serve " + r.type);
			}
		} catch (Refusal f) {
			return errorFor(r, f);
		} catch (Exception e) {
			return errorFor(r, refuse("systemFailure", "BC peer: " + e));
		}
	}

	/* RFC 4210 5.1.1 / RFC 9483 3.1: what every request must carry. */
	private void checkHeader(Req r) throws Refusal {
		int pvno = r.hdr.getPvno().intValueExact();
		if (pvno != PKIHeader.CMP_2000 && pvno != PKIHeader.CMP_2021)
			throw refuse("unsupportedVersion", "pvno " + pvno);
		if (r.hdr.getSender().getTagNo() != GeneralName.directoryName)
			throw refuse("badDataFormat", "sender is no directoryName");
		ASN1OctetString tid = r.hdr.getTransactionID();
		if (tid == null || tid.getOctets().length < MIN_NONCE)
			throw refuse("badRequest", "transactionID missing or under 128 bits");
		ASN1OctetString sn = r.hdr.getSenderNonce();
		if (sn == null || sn.getOctets().length < MIN_NONCE)
			throw refuse("badSenderNonce", "senderNonce missing or under 128 bits");
	}

	/* RFC 4210 5.1.3: PBM with the shared secret, or a signature by a
	 * certificate this CA issued (first in extraCerts, RFC 9483 3.3). */
	private void checkProtection(Req r) throws Exception {
		if (r.msg.getProtection() == null || r.hdr.getProtectionAlg() == null) {
			r.prot = "none";
			throw refuse("badMessageCheck", "the request is not protected");
		}
		ProtectedPKIMessage pm = new ProtectedPKIMessage(new GeneralPKIMessage(r.msg));
		if (pm.hasPasswordBasedMacProtection()) {
			String kid = r.hdr.getSenderKID() == null ? null
				: new String(r.hdr.getSenderKID().getOctets(), StandardCharsets.UTF_8);
			r.prot = "pbm:" + kid;
			if (secret == null || ref == null || !ref.equals(kid))
				throw refuse("badMessageCheck", "unknown reference value " + kid);
			PBMParameter p = PBMParameter.getInstance(r.hdr.getProtectionAlg().getParameters());
			r.note.append(" iter=").append(p.getIterationCount().getValue());
			boolean ok;
			try {
				// 100000: p11enroll's largest; more is refused as a DoS (BC's ceiling)
				ok = pm.verify(new PKMACBuilder(new JcePKMACValuesCalculator().setProvider(BC), 100000), secret);
			} catch (CMPException e) {
				throw refuse("badMessageCheck", "PBM: " + e.getMessage());
			}
			if (!ok) {
				r.prot = "pbm:bad-mac";
				throw refuse("badMessageCheck", "wrong MAC (shared secret differs)");
			}
			r.mac = true;
			return;
		}
		X509CertificateHolder[] extra = pm.getCertificates();
		r.prot = "sig";
		if (extra.length == 0)
			throw refuse("badMessageCheck", "signed, but no protection certificate in extraCerts");
		X509CertificateHolder pc = extra[0];
		r.prot = "sig:" + pc.getSubject();
		if (!pc.getIssuer().equals(ca.cert.getSubject()) || !pc.isSignatureValid(verifierFor(ca.cert)))
			throw refuse("signerNotTrusted", "the protection certificate was not issued by this CA");
		if (!pc.isValidOn(new Date()))
			throw refuse("signerNotTrusted", "the protection certificate is not valid now");
		X500Name sender = X500Name.getInstance(r.hdr.getSender().getName());
		if (!sender.equals(pc.getSubject()))
			throw refuse("badMessageCheck", "sender " + sender + " is not the protection certificate's subject");
		// RFC 9483 3.1: senderKID, when present, identifies the protection key.
		SubjectKeyIdentifier ski = SubjectKeyIdentifier.fromExtensions(pc.getExtensions());
		if (r.hdr.getSenderKID() != null && ski != null
				&& !Arrays.equals(r.hdr.getSenderKID().getOctets(), ski.getKeyIdentifier()))
			throw refuse("badMessageCheck", "senderKID is not the protection certificate's SKI");
		if (!pm.verify(verifierFor(pc)))
			throw refuse("badMessageCheck", "the signature does not verify");
		r.protCert = pc;
	}

	private String tidKey(Req r) {
		return org.bouncycastle.util.encoders.Hex.toHexString(r.hdr.getTransactionID().getOctets());
	}

	private boolean isRevoked(X509CertificateHolder c) {
		return revoked.contains(c.getSerialNumber());
	}

	/* ir, cr, kur: exactly one CertReqMsg (RFC 9483 4.1), signature POP. */
	private byte[] certRequest(Req r, int repBody) throws Exception {
		String key = tidKey(r);
		if (txns.containsKey(key))
			throw refuse("transactionIdInUse", "transactionID already in use");
		boolean kur = repBody == PKIBody.TYPE_KEY_UPDATE_REP;
		if (kur && r.protCert == null)
			throw refuse("wrongIntegrity", "a kur must be signed with the certificate it updates");
		if (r.protCert != null && isRevoked(r.protCert))
			throw refuse("certRevoked", "the protection certificate is revoked");
		if (r.msg.getBody().getType() == PKIBody.TYPE_P10_CERT_REQ)
			return p10cr(r, key);
		CertReqMsg[] msgs = CertReqMessages.getInstance(r.msg.getBody().getContent()).toCertReqMsgArray();
		if (msgs.length != 1)
			throw refuse("badRequest", msgs.length + " certificate requests (the profile allows one)");
		CertificateRequestMessage crm = new CertificateRequestMessage(msgs[0]);
		BigInteger certReqId = msgs[0].getCertReq().getCertReqId().getValue();
		CertTemplate t = crm.getCertTemplate();
		Txn x = new Txn();
		x.reqType = r.type;
		x.prot = r.prot;
		x.repBody = repBody;
		x.certReqId = certReqId;
		x.spki = t.getPublicKey();
		x.subject = t.getSubject();
		if (t.getExtensions() != null)
			x.san = t.getExtensions().getExtension(Extension.subjectAlternativeName);
		r.note.append(" certReqId=").append(certReqId);

		if (kur) {
			// oldCertID (RFC 4211 6.5) names the certificate being updated: the
			// one that signed the request, issued here.
			CertId old = oldCertId(msgs[0].getCertReq().getControls());
			if (old == null)
				throw refuse("badCertId", "kur without oldCertID control");
			X500Name oi = X500Name.getInstance(old.getIssuer().getName());
			BigInteger os = old.getSerialNumber().getValue();
			r.note.append(" oldCert=").append(hex(os));
			if (!oi.equals(ca.cert.getSubject()) || !issued.contains(os))
				throw refuse("badCertId", "oldCertID names no certificate issued here");
			if (revoked.contains(os))
				throw refuse("certRevoked", "the certificate to update is revoked");
			if (!os.equals(r.protCert.getSerialNumber()))
				throw refuse("badCertId", "the kur is not signed with the certificate it updates");
			if (x.subject == null || x.subject.getRDNs().length == 0)
				x.subject = r.protCert.getSubject();
			// Policy: a key update brings a new key.
			if (r.protCert.getSubjectPublicKeyInfo().equals(x.spki))
				return certRejection(r, x, "badCertTemplate", "kur for the key the old certificate has");
		}
		if (certReqId.signum() != 0)
			return certRejection(r, x, "badRequest", "certReqId " + certReqId + " (RFC 9483 4.1.1: 0)");
		if (x.spki == null)
			return certRejection(r, x, "badCertTemplate", "no public key in the template");
		if (x.subject == null || x.subject.getRDNs().length == 0)
			return certRejection(r, x, "badCertTemplate", "no subject in the template");
		if (t.getIssuer() != null && !t.getIssuer().equals(ca.cert.getSubject()))
			return certRejection(r, x, "wrongAuthority", "template issuer " + t.getIssuer());

		// Proof of possession: the new key's signature over the CertRequest
		// (RFC 4211 4.1), checked with the key from the template.
		if (!crm.hasProofOfPossession()
				|| crm.getProofOfPossessionType() != CertificateRequestMessage.popSigningKey)
			return certRejection(r, x, "badPOP", "no signature POP");
		// RFC 4211 4.1: without poposkInput the signature covers the
		// CertRequest, which then must name the subject and key itself.
		POPOSigningKey pops = POPOSigningKey.getInstance(msgs[0].getPopo().getObject());
		if (pops.getPoposkInput() == null && (t.getSubject() == null || t.getPublicKey() == null))
			return certRejection(r, x, "badPOP", "POP without poposkInput for a template without subject");
		boolean popOk;
		try {
			popOk = crm.isValidSigningKeyPOP(
				new JcaContentVerifierProviderBuilder().setProvider(BC).build(x.spki));
		} catch (Exception e) {
			return certRejection(r, x, "badPOP", "POP: " + e.getMessage());
		}
		if (!popOk)
			return certRejection(r, x, "badPOP", "the POP signature does not verify");
		r.note.append(" pop=ok");
		return grant(r, x, key);
	}

	/* The request is good: (--reject) refused by policy, or answered
	 * "waiting" (--poll), or the certificate now. */
	private byte[] grant(Req r, Txn x, String key) throws Exception {
		if (implicitConfirmAsked(r))
			r.note.append(" implicitConfirm=not-granted");
		if (rejectName != null)
			return certRejection(r, x, rejectName, "rejected by the BC peer (--reject)");
		txns.put(key, x);
		if (polls > 0) {
			x.waiting = true;
			x.pollsLeft = polls;
			CertResponse cr = new CertResponse(new ASN1Integer(x.certReqId), new PKIStatusInfo(PKIStatus.waiting));
			return reply(r, x, x.repBody, new CertRepMessage(null, new CertResponse[] { cr }),
				bodyName(x.repBody) + " waiting", null);
		}
		return deliver(r, x);
	}

	/* p10cr (RFC 9483 4.1.4): a PKCS#10 request, its signature the POP; the
	 * cp's certReqId is -1, as RFC 4210 5.3.4 says for a request without
	 * one, and so are those of pollReq and certConf. */
	private byte[] p10cr(Req r, String key) throws Exception {
		PKCS10CertificationRequest csr = new PKCS10CertificationRequest(
			CertificationRequest.getInstance(r.msg.getBody().getContent()));
		Txn x = new Txn();
		x.reqType = r.type;
		x.prot = r.prot;
		x.repBody = PKIBody.TYPE_CERT_REP;
		x.certReqId = BigInteger.ONE.negate();
		x.spki = csr.getSubjectPublicKeyInfo();
		x.subject = csr.getSubject();
		for (Attribute a : csr.getAttributes(PKCSObjectIdentifiers.pkcs_9_at_extensionRequest))
			x.san = Extensions.getInstance(a.getAttrValues().getObjectAt(0))
				.getExtension(Extension.subjectAlternativeName);
		if (x.subject == null || x.subject.getRDNs().length == 0)
			return certRejection(r, x, "badCertTemplate", "no subject in the CSR");
		boolean sigOk;
		try {
			sigOk = csr.isSignatureValid(new JcaContentVerifierProviderBuilder().setProvider(BC).build(x.spki));
		} catch (Exception e) {
			return certRejection(r, x, "badPOP", "CSR: " + e.getMessage());
		}
		if (!sigOk)
			return certRejection(r, x, "badPOP", "the CSR signature does not verify");
		r.note.append(" csr-signature=ok");
		return grant(r, x, key);
	}

	private static CertId oldCertId(Controls c) {
		if (c == null)
			return null;
		for (AttributeTypeAndValue a : c.toAttributeTypeAndValueArray())
			if (a.getType().equals(CMPObjectIdentifiers.regCtrl_oldCertID))
				return CertId.getInstance(a.getValue());
		return null;
	}

	private static boolean implicitConfirmAsked(Req r) {
		InfoTypeAndValue[] gi = r.hdr.getGeneralInfo();
		if (gi != null)
			for (InfoTypeAndValue i : gi)
				if (i.getInfoType().equals(CMPObjectIdentifiers.it_implicitConfirm))
					return true;
		return false;
	}

	/* A rejected certificate request is answered in the body type it expects
	 * (RFC 9483 4.1.1: CertResponse status rejection with failInfo). */
	private byte[] certRejection(Req r, Txn x, String failName, String text) throws Exception {
		PKIStatusInfo si = new PKIStatusInfo(PKIStatus.rejection, new PKIFreeText(text),
			new PKIFailureInfo(failInfoBit(failName)));
		CertResponse cr = new CertResponse(new ASN1Integer(x.certReqId), si);
		return reply(r, null, x.repBody, new CertRepMessage(null, new CertResponse[] { cr }),
			bodyName(x.repBody) + " rejection " + failName + " (" + text + ")", null);
	}

	/* Issue the certificate now and answer with it. */
	private byte[] deliver(Req r, Txn x) throws Exception {
		X509CertificateHolder c = makeCert(ca.cert.getSubject(), ca.cert, ca.key, x.subject, x.spki, days, false,
			null, x.san);
		x.cert = c;
		x.waiting = false;
		BigInteger s = c.getSerialNumber();
		issued.add(s);
		writePem(dir.resolve("issued").resolve(hex(s) + ".pem"), c);
		index("issued " + hex(s) + " " + x.reqType + " " + x.subject);
		CertifiedKeyPair ckp = new CertifiedKeyPair(new CertOrEncCert(new CMPCertificate(c.toASN1Structure())));
		CertResponse cr = new CertResponse(new ASN1Integer(x.certReqId), new PKIStatusInfo(PKIStatus.granted), ckp,
			null);
		// caPubs only where the client has no other way to learn the root:
		// an ir protected by MAC (RFC 9483 4.1.1).
		CMPCertificate[] caPubs = r.mac && x.repBody == PKIBody.TYPE_INIT_REP
			? new CMPCertificate[] { new CMPCertificate(ca.cert.toASN1Structure()) } : null;
		List<X509CertificateHolder> chain = new ArrayList<>();
		chain.add(ca.cert); // RFC 9483 4.1.1: extraCerts carry the new certificate's chain
		return reply(r, x, x.repBody, new CertRepMessage(caPubs, new CertResponse[] { cr }),
			bodyName(x.repBody) + " accepted serial=" + hex(s), chain);
	}

	/* RFC 4210 5.3.22, RFC 9483 4.4 */
	private byte[] pollRequest(Req r) throws Exception {
		Txn x = txnFor(r);
		BigInteger[] ids = PollReqContent.getInstance(r.msg.getBody().getContent()).getCertReqIdValues();
		if (ids.length != 1 || !ids[0].equals(x.certReqId))
			throw refuse("badRequest", "pollReq for another certReqId");
		r.note.append(" certReqId=").append(ids[0]);
		if (!x.waiting)
			throw refuse("badRequest", "pollReq, but nothing is pending");
		if (x.pollsLeft > 0) {
			x.pollsLeft--;
			PollRepContent prc = new PollRepContent(new ASN1Integer(x.certReqId), new ASN1Integer(checkAfter));
			return reply(r, x, PKIBody.TYPE_POLL_REP, prc, "pollRep checkAfter=" + checkAfter, null);
		}
		return deliver(r, x);
	}

	/* The transaction of a follow-up message, whose recipNonce must be our
	 * last senderNonce (RFC 4210 5.1.1). */
	private Txn txnFor(Req r) throws Refusal {
		Txn x = txns.get(tidKey(r));
		if (x == null)
			throw refuse("badRequest", "unknown transactionID");
		ASN1OctetString rn = r.hdr.getRecipNonce();
		if (rn == null || !Arrays.equals(rn.getOctets(), x.lastNonce))
			throw refuse("badRecipientNonce", "recipNonce is not our last senderNonce");
		// Policy: only the requester may poll for or confirm its certificate.
		if (!r.prot.equals(x.prot))
			throw refuse("badMessageCheck", "protected by " + r.prot + ", the request by " + x.prot);
		return x;
	}

	/* RFC 4210 5.3.18: the certHash over the certificate as delivered, with
	 * the hash of its signature algorithm. */
	private byte[] certConf(Req r) throws Exception {
		Txn x = txnFor(r);
		if (x.cert == null)
			throw refuse("badRequest", "certConf before a certificate was delivered");
		hold(r);
		CertificateConfirmationContent cc = new CertificateConfirmationContent(
			CertConfirmContent.getInstance(r.msg.getBody().getContent()), new DefaultDigestAlgorithmIdentifierFinder());
		CertificateStatus[] st = cc.getStatusMessages();
		String s = hex(x.cert.getSerialNumber());
		if (st.length != 1) {
			txns.remove(tidKey(r));
			revokeRejected(x.cert);
			return reply(r, null, PKIBody.TYPE_CONFIRM, org.bouncycastle.asn1.DERNull.INSTANCE,
				"pkiConf certConf-with-" + st.length + "-statuses serial=" + s + " rejected", null);
		}
		if (!st[0].getCertRequestID().equals(x.certReqId))
			throw refuse("badRequest", "certConf for certReqId " + st[0].getCertRequestID());
		r.note.append(" certReqId=").append(x.certReqId);
		boolean hashOk = st[0].isVerified(x.cert, new JcaDigestCalculatorProviderBuilder().setProvider(BC).build());
		r.note.append(" certHash=").append(hashOk ? "ok" : "mismatch");
		if (!hashOk)
			throw refuse("badCertId", "certHash does not match the certificate delivered");
		PKIStatusInfo si = st[0].getStatusInfo();
		txns.remove(tidKey(r));
		if (si != null && si.getStatus().intValue() != PKIStatus.GRANTED
				&& si.getStatus().intValue() != PKIStatus.GRANTED_WITH_MODS) {
			// The client refused the certificate: it must not stay valid.
			revokeRejected(x.cert);
			return reply(r, null, PKIBody.TYPE_CONFIRM, org.bouncycastle.asn1.DERNull.INSTANCE,
				"pkiConf serial=" + s + " rejected-by-client", null);
		}
		index("confirmed " + s);
		return reply(r, null, PKIBody.TYPE_CONFIRM, org.bouncycastle.asn1.DERNull.INSTANCE,
			"pkiConf serial=" + s + " confirmed", null);
	}

	/* --hold-certconf: the client has stored the certificate and waits for
	 * pkiConf; the test looks at the token, then creates the gate file.  A
	 * bound, so that a test that dies does not leave the peer stuck. */
	private void hold(Req r) throws InterruptedException {
		if (holdGate == null || Files.exists(holdGate))
			return;
		log(r.type + " prot=" + r.prot + " held until " + holdGate + " exists");
		for (int i = 0; i < 6000 && !Files.exists(holdGate); i++)
			Thread.sleep(50);
		r.note.append(" held");
	}

	private void revokeRejected(X509CertificateHolder c) {
		revoked.add(c.getSerialNumber());
		index("rejected " + hex(c.getSerialNumber()));
	}

	/* RFC 9483 4.2: one RevDetails naming a certificate issued here; signed
	 * by that certificate's key (or the RA), or MAC-protected. */
	private byte[] revocation(Req r) throws Exception {
		RevDetails[] rd = RevReqContent.getInstance(r.msg.getBody().getContent()).toRevDetailsArray();
		if (rd.length != 1)
			throw refuse("badRequest", rd.length + " RevDetails (the profile allows one)");
		CertTemplate t = rd[0].getCertDetails();
		if (t.getSerialNumber() == null || t.getIssuer() == null)
			return revRejection(r, "badCertId", "RevDetails without issuer and serialNumber");
		BigInteger s = t.getSerialNumber().getValue();
		r.note.append(" serial=").append(hex(s));
		// RFC 9483 4.2: crlEntryDetails REQUIRED, exactly one reasonCode
		// (0 = unspecified when the reason is not known or not published).
		Extensions ext = rd[0].getCrlEntryDetails();
		Extension rc = ext == null ? null : ext.getExtension(Extension.reasonCode);
		if (rc == null)
			return revRejection(r, "badDataFormat", "no reasonCode in crlEntryDetails (RFC 9483 4.2)");
		int reason = CRLReason.getInstance(rc.getParsedValue()).getValue().intValue();
		r.note.append(" reason=").append(reason);
		if (reason < 0 || reason > 10 || reason == 7)
			return revRejection(r, "badRequest", "reasonCode " + reason + " is no CRLReason");
		if (!t.getIssuer().equals(ca.cert.getSubject()) || !issued.contains(s))
			return revRejection(r, "badCertId", "no certificate " + hex(s) + " issued here");
		// RFC 9483 4.2: signed with the key of the certificate to revoke
		// (5.3.2: or by a PKI management entity, our RA); no MAC.
		if (r.protCert == null)
			return revRejection(r, "wrongIntegrity", "an rr must be signed by the certificate to revoke");
		if (!r.protCert.getSerialNumber().equals(s) && !r.protCert.equals(ra.cert))
			return revRejection(r, "notAuthorized", "signed by another certificate than the one to revoke");
		if (revoked.contains(s))
			return revRejection(r, "certRevoked", "certificate " + hex(s) + " is already revoked");
		revoked.add(s);
		index("revoked " + hex(s) + " " + reason);
		RevRepContentBuilder b = new RevRepContentBuilder().add(new PKIStatusInfo(PKIStatus.granted),
			new CertId(new GeneralName(ca.cert.getSubject()), s));
		return reply(r, null, PKIBody.TYPE_REVOCATION_REP, b.build(), "rp accepted", null);
	}

	private byte[] revRejection(Req r, String failName, String text) throws Exception {
		PKIStatusInfo si = new PKIStatusInfo(PKIStatus.rejection, new PKIFreeText(text),
			new PKIFailureInfo(failInfoBit(failName)));
		return reply(r, null, PKIBody.TYPE_REVOCATION_REP, new RevRepContentBuilder().add(si).build(),
			"rp rejection " + failName + " (" + text + ")", null);
	}

	/* RFC 9483 4.3: caCerts answered with the CA certificate; any other
	 * question with its infoType and no value ("nothing to say"). */
	private byte[] genm(Req r) throws Exception {
		InfoTypeAndValue[] q = GenMsgContent.getInstance(r.msg.getBody().getContent()).toInfoTypeAndValueArray();
		InfoTypeAndValue[] a = new InfoTypeAndValue[q.length];
		StringBuilder what = new StringBuilder();
		for (int i = 0; i < q.length; i++) {
			ASN1ObjectIdentifier it = q[i].getInfoType();
			if (it.equals(CMPObjectIdentifiers.id_it_caCerts)) {
				a[i] = new InfoTypeAndValue(it, new DERSequence(new CMPCertificate(ca.cert.toASN1Structure())));
				what.append(" caCerts=1");
			} else {
				a[i] = new InfoTypeAndValue(it);
				what.append(" ").append(it).append("=none");
			}
		}
		return reply(r, null, PKIBody.TYPE_GEN_REP, new GenRepContent(a), "genp" + what, null);
	}

	/* The client gives up (RFC 9483 3.6.4): acknowledged with pkiConf. */
	private byte[] clientError(Req r) throws Exception {
		ErrorMsgContent e = ErrorMsgContent.getInstance(r.msg.getBody().getContent());
		r.note.append(" status=").append(e.getPKIStatusInfo().getStatus());
		Txn x = txns.remove(tidKey(r));
		if (x != null && x.cert != null)
			revokeRejected(x.cert);
		return reply(r, null, PKIBody.TYPE_CONFIRM, org.bouncycastle.asn1.DERNull.INSTANCE, "pkiConf", null);
	}

	/* ---- responses ---- */

	/* Protection of a response: PBM when the request came with a valid MAC
	 * (the client may have no trust anchor yet), else a signature.  Header
	 * fields as RFC 4210 5.1.1 asks: the request's transactionID, its
	 * senderNonce as recipNonce, a fresh senderNonce. */
	private byte[] reply(Req r, Txn x, int bodyType, ASN1Encodable content, String outcome,
			List<X509CertificateHolder> extra) throws Exception {
		PKIHeader h = r.hdr;
		boolean useMac = r.mac && !signAll;
		X500Name sender = useMac ? ca.cert.getSubject() : signer.cert.getSubject();
		GeneralName recipient = h != null ? h.getSender() : new GeneralName(X500Name.getInstance(new DERSequence()));
		// The request's version where it is one we speak (RFC 9480 7: cmp2021
		// only in answer to cmp2021), else cmp2000.
		int pvno = h != null && h.getPvno().intValueExact() == PKIHeader.CMP_2021 ? PKIHeader.CMP_2021
			: PKIHeader.CMP_2000;
		ProtectedPKIMessageBuilder b = new ProtectedPKIMessageBuilder(pvno, new GeneralName(sender), recipient);
		byte[] nonce = new byte[MIN_NONCE];
		rnd.nextBytes(nonce);
		b.setSenderNonce(nonce).setMessageTime(new Date()).setBody(new PKIBody(bodyType, content));
		if (h != null && h.getTransactionID() != null) {
			b.setTransactionID(h.getTransactionID().getOctets());
		} else {
			byte[] tid = new byte[MIN_NONCE];
			rnd.nextBytes(tid);
			b.setTransactionID(tid);
		}
		if (h != null && h.getSenderNonce() != null)
			b.setRecipNonce(h.getSenderNonce().getOctets());
		if (x != null)
			x.lastNonce = nonce;
		List<X509CertificateHolder> certs = new ArrayList<>();
		ProtectedPKIMessage m;
		String how;
		if (useMac) {
			// Same OWF, MAC and iteration count as the request, a new salt.
			PBMParameter rp = PBMParameter.getInstance(r.hdr.getProtectionAlg().getParameters());
			byte[] salt = new byte[16];
			rnd.nextBytes(salt);
			PKMACBuilder pb = new PKMACBuilder(new JcePKMACValuesCalculator().setProvider(BC));
			pb.setParameters(new PBMParameter(salt, rp.getOwf(), rp.getIterationCount().intValueExact(), rp.getMac()));
			MacCalculator mc = pb.build(secret);
			b.setSenderKID(r.hdr.getSenderKID().getOctets());
			if (extra != null)
				certs.addAll(extra);
			for (X509CertificateHolder c : certs)
				b.addCMPCertificate(c);
			m = b.build(mc);
			how = "pbm";
		} else {
			// RFC 9483 3.3: the protection certificate first, then its chain.
			SubjectKeyIdentifier ski = SubjectKeyIdentifier.fromExtensions(signer.cert.getExtensions());
			if (ski != null)
				b.setSenderKID(ski.getKeyIdentifier());
			certs.add(signer.cert);
			if (signer != ca)
				certs.add(ca.cert);
			if (extra != null)
				for (X509CertificateHolder c : extra)
					if (!certs.contains(c))
						certs.add(c);
			for (X509CertificateHolder c : certs)
				b.addCMPCertificate(c);
			ContentSigner cs = new JcaContentSignerBuilder(sigAlg(signer.key)).setProvider(BC).build(signer.key);
			m = b.build(cs);
			how = "sig:" + signer.name;
		}
		log(r.type + " prot=" + r.prot + r.note + " -> " + outcome + " [" + how + "]");
		return m.toASN1Structure().getEncoded(ASN1Encoding.DER);
	}

	/* An error message (RFC 4210 5.3.21) for a request that could not be
	 * served: MAC-protected only after a MAC that verified, else signed (a
	 * failed MAC means the secret is not shared). */
	private byte[] errorFor(Req r, Refusal f) {
		try {
			PKIStatusInfo si = new PKIStatusInfo(PKIStatus.rejection, new PKIFreeText(f.getMessage()),
				new PKIFailureInfo(f.failInfo));
			return reply(r, null, PKIBody.TYPE_ERROR, new ErrorMsgContent(si),
				"error " + f.failName + " (" + f.getMessage() + ")", null);
		} catch (Exception e) {
			throw new IllegalStateException("cannot build an error message", e);
		}
	}
}
