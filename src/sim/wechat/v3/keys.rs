//! Key material of the simulator's API v3 dialect and of the demo merchant.
//! **Simulator/demo only: these keys are public (they are in the source),
//! never use them for production.** Made for tillpay with openssl
//! (`genrsa 2048`, `req -x509 -days 3650`), so `tillpay demo` and the tests
//! need no files and no account.

/// The demo merchant's number.
pub const MCHID: &str = "1900000001";
/// The demo merchant's app id.
pub const APPID: &str = "wx8888888888888888";
/// The serial number of the demo merchant's API certificate
/// ([`MERCHANT_CERT_PEM`]), as the merchant portal shows it.
pub const MERCHANT_SERIAL: &str = "3775B6A45ACD588826D15E583A95F5DD2C7856F1";
/// The id of the simulator's "WeChat Pay public key" (微信支付公钥).
pub const PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0119000000012026120100000000000001";
/// The serial of the simulator's platform certificate ([`PLATFORM_CERT_PEM`]),
/// for merchants that still verify with platform certificates.
pub const PLATFORM_SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";

/// The demo merchant's API private key (PKCS#8 PEM, `apiclient_key.pem`): signs requests.
pub const MERCHANT_PRIVATE_KEY_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDOEoy9baexS+ZX\n\
A/CbFpqWNFjAyB8UXSVofg5G1l91UEZmJhWERAUqupC83ffxOSa0crx18gBjte26\n\
UsZDZxOzJOXs6fSHk9AOiiu48St0+pNAiM+PMv3G1S1aWmQss+KmRtOgw3o1DfAn\n\
PAVBZCqPDarh1Ifn572XiYkbmuazerBWI1tmAyYhhJecURWGq9ebDhrr4lSv2wOj\n\
+uWZNfxNfUolRDw/9DCzRJj4llJ8uhC+W71wW4NBSuUpRmKxVuoEIGwvGLtiVQd9\n\
LAPjSsyjnjIjzPSdch3gdffiPc9qRykb/P9jxOkECdlk2NXzco2SOugH1Dnwrk1P\n\
Qlhj5HdnAgMBAAECggEAFaNR/uQAOzgmiBWEUqyVb9cwSJHa3ZcIQggWdK622Ekl\n\
Ez3FfZ1s03dCkmpWShB/tWvkyRevncixHSLq6ZHtuh5SPEW2pPPK4XP1slY0g3R6\n\
OMkEzlsC1bl1qSqboSwETQRb3WIZN2/uuxfsz1h2tY2wV0UrPhkRydMpv+nMdqTn\n\
iILxuG3VbBU07fu4liC99P+9c9Bjf1nyCH7Sl1LAKAOWq9scWS9v4Agylx52rktD\n\
cv0w6zdUZWEq/LU7UKa8bL9n6tr93gL4gHxgnHXf7mHvKK+5WthXgH+Sb7OANT+O\n\
fdou9DFL3q9RUh4OtRxGVKmYzjJSvyRsQm2S06qfdQKBgQDyO5GaTjFM+eUXD5In\n\
FjFPIJjxFzTKmHNKu4pOaC5pIOHj7VhaKznGJjsfmZrsL5oKW4yK4NpO8FcvGv11\n\
VZb8CvvM/v6D6UIlwK0SZ3E9gkesU8pzuI3a8zlymxFUrG7YJbL2LwGGFum9Ae15\n\
EzKCHdKa+pj1Nyy8Psl5QDT/UwKBgQDZyNuXCrRMJZJ7NFAgA/zdRP4CgdFyEbJo\n\
calphYm5Wfb7UqiY4GmmcizPiSqKfQrUbxlhTqwhX37K8upOGr0eOUjBs20OMra3\n\
H7wK6rW9BuSXruey0MbvGYpPjKF2RKb6gof7sCZ4L/zTSdmuHfx4kXIWCe82dZII\n\
JqG1hVvpHQKBgQCGxYvSLXUSnerPNNOdOaS/oKRXZxDxM3bZ+pQN4bsItMnZlaFV\n\
sb0YOQcmIsFmbWmoH52HW2k7CE+JntusH628l6PXP3x+ChbKiHQCzFjd3xFfmNMI\n\
JYOPcUniMNKoqLOXQQpcHHUdlLwBdAQbHAo7CLq3jXvy2vrh1ZElDAswjwKBgQCJ\n\
m9K0k3ztCGiQFLP0JtDl9ywQ5Xoz+16hhAApvskRJvlaQBZr0pCvLUGHOQJ6Uxw+\n\
spx00cMNq0twbSEDjP2mVUfVrMvhxsWQ3CpzM272K57RASFB6Y1pktfD//Ydxq9D\n\
ZqsJq3oDQz8bOnSjAit++1f8+PX/kTZelBplmghDOQKBgGJxK8BdfbWlksLv5Rgu\n\
8kcrai6o+7fvPTIgtcKNAXXbkVDm7K8kmWZolzirTqFyxwzvukwMKuahtt7jb4vU\n\
gQEpPtZ3xGSy1TsmwhbhwBj3sukkyAkFmfLaOWLYbzFCpdx8PWs1j8NN4h85W4qR\n\
uh6710HOuPgeZcSdloMpyAQ6\n\
-----END PRIVATE KEY-----\n";

/// Its public key (SPKI PEM): the simulator verifies requests with it.
pub const MERCHANT_PUBLIC_KEY_PEM: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAzhKMvW2nsUvmVwPwmxaa\n\
ljRYwMgfFF0laH4ORtZfdVBGZiYVhEQFKrqQvN338TkmtHK8dfIAY7XtulLGQ2cT\n\
syTl7On0h5PQDooruPErdPqTQIjPjzL9xtUtWlpkLLPipkbToMN6NQ3wJzwFQWQq\n\
jw2q4dSH5+e9l4mJG5rms3qwViNbZgMmIYSXnFEVhqvXmw4a6+JUr9sDo/rlmTX8\n\
TX1KJUQ8P/Qws0SY+JZSfLoQvlu9cFuDQUrlKUZisVbqBCBsLxi7YlUHfSwD40rM\n\
o54yI8z0nXId4HX34j3PakcpG/z/Y8TpBAnZZNjV83KNkjroB9Q58K5NT0JYY+R3\n\
ZwIDAQAB\n\
-----END PUBLIC KEY-----\n";

/// The demo merchant's API certificate (`apiclient_cert.pem`), serial [`MERCHANT_SERIAL`].
pub const MERCHANT_CERT_PEM: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIDgzCCAmugAwIBAgIUN3W2pFrNWIgm0V5YOpX13Sx4VvEwDQYJKoZIhvcNAQEL\n\
BQAwUTETMBEGA1UEAwwKMTkwMDAwMDAwMTEjMCEGA1UECgwadGlsbHBheSBzaW11\n\
bGF0b3IgbWVyY2hhbnQxFTATBgNVBAsMDHRpbGxwYXkgZGVtbzAeFw0yNjEyMDEx\n\
NzQwNTlaFw0zNjExMjgxNzQwNTlaMFExEzARBgNVBAMMCjE5MDAwMDAwMDExIzAh\n\
BgNVBAoMGnRpbGxwYXkgc2ltdWxhdG9yIG1lcmNoYW50MRUwEwYDVQQLDAx0aWxs\n\
cGF5IGRlbW8wggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQDOEoy9baex\n\
S+ZXA/CbFpqWNFjAyB8UXSVofg5G1l91UEZmJhWERAUqupC83ffxOSa0crx18gBj\n\
te26UsZDZxOzJOXs6fSHk9AOiiu48St0+pNAiM+PMv3G1S1aWmQss+KmRtOgw3o1\n\
DfAnPAVBZCqPDarh1Ifn572XiYkbmuazerBWI1tmAyYhhJecURWGq9ebDhrr4lSv\n\
2wOj+uWZNfxNfUolRDw/9DCzRJj4llJ8uhC+W71wW4NBSuUpRmKxVuoEIGwvGLti\n\
VQd9LAPjSsyjnjIjzPSdch3gdffiPc9qRykb/P9jxOkECdlk2NXzco2SOugH1Dnw\n\
rk1PQlhj5HdnAgMBAAGjUzBRMB0GA1UdDgQWBBRGS+3HkYx7g4rVgQkfyFk1rCeY\n\
pjAfBgNVHSMEGDAWgBRGS+3HkYx7g4rVgQkfyFk1rCeYpjAPBgNVHRMBAf8EBTAD\n\
AQH/MA0GCSqGSIb3DQEBCwUAA4IBAQCV+B+htbJbczKt3JoWv464oFq7nzAT17kE\n\
HIZ69YMxP/GTqZDJa2+5mf0vJMQ3toE7TiKR5XwV035kcGGfKHuh3rhKdk2Fm42G\n\
37CzaWY685Ky4mAxbuyQBrq5YBFuNUt3yeWmjtXtOgv+MCo7SIA7ewOxnkpFNwhn\n\
ZiEIWy8JFN99OgqUgFHjRhC1N71GCEdZsuUZ4vSmk6U1GF9MG717nVoTRJ06DdhI\n\
uf8BXlyCPB+MiUZTu2Icq5+68zXaC58icWegJQ2sgQsOt1DLMk0MCyVujHB9c2xq\n\
l44uriSMzz7OxInmm1F87EylIs1IURLvarUFq3uUyJKmPkzWsGqX\n\
-----END CERTIFICATE-----\n";

/// The simulator's own private key (PKCS#8 PEM): signs every answer.
pub const WECHATPAY_PRIVATE_KEY_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQCpx12AIJTxx92j\n\
UFkrvzqTMfDm9KPuNJtExwZFljSoCcJgZ0r4NilTnDrTcDvXv5IraoUamL5NfSX+\n\
kiPP94sIe5+1XB3wtgJiLAsjrCm/Awtoj8c83TV3xKvXd/UePguv00rradIbttYl\n\
HY2JJOh8YXyQKoY6pMcfBjtTBOpvuQC78igM1qfIusOu41o7LAaUydLJ/evKW2cG\n\
1S/upoHVZdq8BWFnAIqrLvE67yGrZ8W14mNp6WXduq9yPLLKMNlp1Hf3Up38Tloe\n\
yp0j9MDBJoyw6V1oop1oRkxwW1EyHNd7FwwWP5kEcmUt2dsZUcvL06V/wxQ0GrCU\n\
OTFqkLTVAgMBAAECggEAE8ZyeBWTc7QNd1PJByTvfCyhfC07mOfMvA6Yhutvd7En\n\
UFZHr7CTULdOTMlyVvdr3Z27IjVvWRQ+JDA+dp9FNPg9SoEPxbVVgrzRkVagyCxh\n\
HE0+7jJv42LnhyHkTaD5eIHaZKA/RlYeDFWsYjCH2dD7Esm5N8Rwowb1Sv60Fc4c\n\
blrWvyKkCmPwe0aPLhXnPAW/vQdFyybtSZiW59lYJn7ugHpWXsyurMUPbtzniOC6\n\
1kgn+SLjGlJEd2LrfQnWhphYH1R0v//UolImQti0D2qPPi89XZQ3AwE7ykjcrDkA\n\
aJFG1ppCXUl63kI46ZUPKlG/86Nz7emxO/4p/PLckwKBgQDjMAZOGgG7U5qUC52o\n\
cYLoAajxmrftLHFCD5ahiIQA21f9ni05bpyM4hD7h9Q9KEAYQ6rwssVEDalZAR7e\n\
fuGfDIBJFrMKWd0U8E+3CJTXGG0Qk4acmW0gVzD2d6WPSF8xS84q9FZKIvnHobe+\n\
7mxr+4Rb+CnnAFJ2aSbSCrTDRwKBgQC/T3rL+0UY0zrATnlgI3fglc/Y0yYKVyDx\n\
45zpKtE6eM1bSJM6KL+QNQMw4I1jp/PKHo9wZD5u8IBzaYHwiICf+2guJotI1Ufq\n\
V9q+O3hdJ4WIGIpTDQfTYcwVHI4nBbzj46uykjz7hkYwMapyS6l4UOyyq4TeNjnp\n\
HxGz1QG9AwKBgQDDbG4gBLL0pmfTbWKCoJHQbI0cts/7zjzmbG5QKRQTgJph6QxR\n\
2NoFPfkJxL9GlDb+KEcEoWKatX20uAgLr+z4WVKIjGQaRU6tUkHf2hveIn6+wYgL\n\
cNaz+Qx/FlBtvf1UdDa2MFOBljByDqP2MzVEdahXTFMPB/HnNXBVQSxYxQKBgQCP\n\
TXbbQv2wKdGRaXbrt8W9GhsV/Jw7FKbd6jSISAVv+jtBTGzUHN/ZoowgWaQvaQhp\n\
d1jUxJIrwcVGLlsiFO3caJLSNxcQWIrFFEgLRTrU9JzGpDNBILqi8VfQ3JHy0w55\n\
2fmsCnTZp+v9f8aAVQK92EhlUat2VEIuyJIXFdB2hwKBgQDeus8zWKO4VLvh+Z6p\n\
1b5ZrQDnb16NRANZLUWWy9YX/ZeP1FjwScTaltRj1wXJ7Nv9qS5bLHUITpYgftDN\n\
41fguSeJdq6ZRQ1jjKDhllRRhocb7KS39iJtDRIK0CIxI+U/DSlJvOFFvWq6x7s6\n\
KG/4x9VcJ5ivd+Q7M48R58Je8g==\n\
-----END PRIVATE KEY-----\n";

/// Its public key (SPKI PEM): the demo merchant's "WeChat Pay public key" file.
pub const WECHATPAY_PUBLIC_KEY_PEM: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqcddgCCU8cfdo1BZK786\n\
kzHw5vSj7jSbRMcGRZY0qAnCYGdK+DYpU5w603A717+SK2qFGpi+TX0l/pIjz/eL\n\
CHuftVwd8LYCYiwLI6wpvwMLaI/HPN01d8Sr13f1Hj4Lr9NK62nSG7bWJR2NiSTo\n\
fGF8kCqGOqTHHwY7UwTqb7kAu/IoDNanyLrDruNaOywGlMnSyf3ryltnBtUv7qaB\n\
1WXavAVhZwCKqy7xOu8hq2fFteJjaell3bqvcjyyyjDZadR391Kd/E5aHsqdI/TA\n\
wSaMsOldaKKdaEZMcFtRMhzXexcMFj+ZBHJlLdnbGVHLy9Olf8MUNBqwlDkxapC0\n\
1QIDAQAB\n\
-----END PUBLIC KEY-----\n";

/// A platform certificate for the same key, serial [`PLATFORM_SERIAL`].
pub const PLATFORM_CERT_PEM: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIDQzCCAiugAwIBAgIUUVfwnv3Alt4V6+gaRwV6cjLxuOEwDQYJKoZIhvcNAQEL\n\
BQAwMTEvMC0GA1UEAwwmdGlsbHBheSBzaW11bGF0b3IgcGxhdGZvcm0gY2VydGlm\n\
aWNhdGUwHhcNMjYxMjAxMTc0MDU5WhcNMzYxMTI4MTc0MDU5WjAxMS8wLQYDVQQD\n\
DCZ0aWxscGF5IHNpbXVsYXRvciBwbGF0Zm9ybSBjZXJ0aWZpY2F0ZTCCASIwDQYJ\n\
KoZIhvcNAQEBBQADggEPADCCAQoCggEBAKnHXYAglPHH3aNQWSu/OpMx8Ob0o+40\n\
m0THBkWWNKgJwmBnSvg2KVOcOtNwO9e/kitqhRqYvk19Jf6SI8/3iwh7n7VcHfC2\n\
AmIsCyOsKb8DC2iPxzzdNXfEq9d39R4+C6/TSutp0hu21iUdjYkk6HxhfJAqhjqk\n\
xx8GO1ME6m+5ALvyKAzWp8i6w67jWjssBpTJ0sn968pbZwbVL+6mgdVl2rwFYWcA\n\
iqsu8TrvIatnxbXiY2npZd26r3I8ssow2WnUd/dSnfxOWh7KnSP0wMEmjLDpXWii\n\
nWhGTHBbUTIc13sXDBY/mQRyZS3Z2xlRy8vTpX/DFDQasJQ5MWqQtNUCAwEAAaNT\n\
MFEwHQYDVR0OBBYEFH29utHMpzhaDCkPtUvMnVfi9em0MB8GA1UdIwQYMBaAFH29\n\
utHMpzhaDCkPtUvMnVfi9em0MA8GA1UdEwEB/wQFMAMBAf8wDQYJKoZIhvcNAQEL\n\
BQADggEBAFqTY+fPcFH12SdvK3rN7C7PpKfOquwlTOz1xRWZmhpXqDIH2KhQYDDo\n\
Bisst4g9jQoBfN+YWHoaaGwZTA10UaGpZFpn1dEgICEfLMHMcrD8JA+x76qS+MvS\n\
TJBiAusto6OTTn2M/xBgrsO4H82osqIS5MN4qJwAx66QIHl00noq8VyGi9YoW04z\n\
AU/rINMRxiLCC53xZ+f3qzb/smO8Rxix7vM11tYYA3GijpaaJs4A4vxfEn2xNYcv\n\
4gUTabrGExPA5kAmBe9gFcdcxjXygSe+IRCHOZQ2lTfOYScgZG8DDq+c53JNMTDr\n\
pkDSFkcY+JLoaSU0e5EDdqn8ifyaSkA=\n\
-----END CERTIFICATE-----\n";
