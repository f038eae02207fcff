//! Key material of the simulator and of the demo app. **Simulator/demo
//! only: these keys are public (they are in the source), never use them
//! for production.** `tillpay demo` needs them at run time without files.
//! The same keys are in `tests/fixtures/alipay/` in other forms.

/// The app id the demo's client and the simulator agree on.
pub const DEMO_APP_ID: &str = "2021000000000000";

/// The simulator's merchant account (PID), as it appears in bill names.
pub const SIM_PID: &str = "2088000000000000";

/// Demo app private key (PKCS#1 PEM): signs the demo client's requests.
pub const DEMO_APP_PRIVATE_KEY_PEM: &str = "\
-----BEGIN RSA PRIVATE KEY-----\n\
MIIEogIBAAKCAQEAl7D9yFDyp5Cobs9ELSlLyc8p8aYPy9F179ToCe9aQ4XwSgEm\n\
F7O0mRN+DN1KeRtc+oMOLfhwz+1usvM3sjwpFqB+u4y1yxSrXNQGrhv64OBUYR1m\n\
UHSMjLX6wNQEH+aoHBcMQDGjmZbzTuskCwyEOkFrUtcC4E1iLsYOcQneRNT5gJfH\n\
Te5RXVngRbuF+X43OAvIYVgY89kWQmpH2XnUarBjROS3XJ3p9eGxK2jVaSUfZ1pi\n\
CjyeeO3d9wSTngHIh2OAZlhsFwd6xO28WLxtZoKlMnQendDdWr1wmDp2XeokryRs\n\
auV5ms2uxgjJA38B33hDpXQfrIKXYtz8kYE5nQIDAQABAoIBABPg/XkdZpdgBTq0\n\
TdZvRX/WdsQ0w3gt5HtAFwKKS/VyXYmNOf08LywqWkf8ThCt7dLkjtymZL5S+sFX\n\
z1I7wRS2hrU0XPSWqlhZbuCtSQTkURqC/FAJ3gtoo8pWXo4Br8EyogfdmXd8yTjr\n\
5sbN5pwty49JHxbe/UFs8iKNLQQvAyAhCnKertbXQu0b/74JEkpBXK3DnWlUw1T6\n\
MFj7cA7rw018BRKuq7OLGD6YU7hM44DXV/HYDYIi3P5nN213Gb5ux8XNOcL3hk1b\n\
wetyIJYixnfB7fekIUpaQkqxNCqsmwmU+NKFXZaJDgxCFWuzBEVcaHCXa4Lg59Le\n\
0C/PpA8CgYEA0QtNbfgkV3PZFcbuezXpukxBvbTwvY4vtr//6hbUw3sOgOKvb5wX\n\
8QFY8d8f1XRhfdQ/WP2sFjf+t+fm/dl5TVeANfaLc0v56kD+Re30gOLzRm0B/uN8\n\
EC/AVCGudQQtz14QDp/eIm6Xl8MspXCqn4/obdoVNq+0jk5DUOJ4GbMCgYEAucO5\n\
L2Q2OP+hy2xWadVV+OyxndfecmUigU3CoYHZoU/bDEzbQrGVJdqA6g0ILKnLq4nP\n\
b32+M5DDD07hy+/jEwJyJqpfP9F3yiqKoY6fcdG4Cgc0Kaqesh5KEb+xs2h3nwJ6\n\
OITuY3ieOB4lAzHDlqfzN/b7phN9m/4P1wjlF28CgYBQF/qExex2rWZhl6TMBG4W\n\
+Ry/KNKMbiwN4yaUdEb01vNJopEBPFdX+eIwWgMCb+LiqS3UVO1YXf/0SqAQZwC5\n\
B2uSQXJQrK2GeXxzIqbpswru0tlO5a4lLYaNNZJ4Ny+uIiYY1Fvx6VmfxiIXCUH2\n\
fNbbMBGssEmHtKjKFttZTQKBgHT3MPYPIjkXdJdyeqKeykg3OMsLLixXU7eY77Dj\n\
4tU4Q9Nl3TUMPb4c68jzNa9xpiU3W552zTkIsFlGMNRJEnBYvOltoxW63bM0wB9j\n\
fy+afkgKKyUFInFCsx6j1c8COzeqxqwpvzRwsSbijCmLvvxweatGX0M9yHxdJzod\n\
hqoPAoGAPKDajkPgIIMs3p3IdWKNbNdSQK+/4xWddk1fa2rvAxR0twlIvKzPQLLr\n\
dzvvMdJQ1TD8zZB6CEK1ngKmGhmn6h5IIbBsGMn/cfSstETtmy3MNyOxFdowGoVV\n\
AkHAxM9DZ69vJgdSg1MOofjiYGezS5bTW3BFwjDVH1J4QaieHkw=\n\
-----END RSA PRIVATE KEY-----\n";

/// Demo app public key (SPKI PEM): the simulator verifies requests with it.
pub const DEMO_APP_PUBLIC_KEY_PEM: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAl7D9yFDyp5Cobs9ELSlL\n\
yc8p8aYPy9F179ToCe9aQ4XwSgEmF7O0mRN+DN1KeRtc+oMOLfhwz+1usvM3sjwp\n\
FqB+u4y1yxSrXNQGrhv64OBUYR1mUHSMjLX6wNQEH+aoHBcMQDGjmZbzTuskCwyE\n\
OkFrUtcC4E1iLsYOcQneRNT5gJfHTe5RXVngRbuF+X43OAvIYVgY89kWQmpH2XnU\n\
arBjROS3XJ3p9eGxK2jVaSUfZ1piCjyeeO3d9wSTngHIh2OAZlhsFwd6xO28WLxt\n\
ZoKlMnQendDdWr1wmDp2XeokryRsauV5ms2uxgjJA38B33hDpXQfrIKXYtz8kYE5\n\
nQIDAQAB\n\
-----END PUBLIC KEY-----\n";

/// The simulator's own private key (PKCS#8 PEM): signs its answers.
pub const SIM_PRIVATE_KEY_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC1SN/CVR9I7F8r\n\
R9dUDQgjvwhCR9oLaPVGNZRLhfzRLD04GQIqGhP2Ovo2JGMwsRpswloWO9y4YrMO\n\
rM53TzGH4YPft1JtevOICWov1/Tp/7N8Z9aCt6AZigcbvU/oakci5DzJAQJ00LD4\n\
nT7I/jeidWXs8Ddfd+4FFwDEFBetl3xsPWSEFWR0UWUZdzTDcH8Ty3dN8kIiLkQ2\n\
I+oveadJDzgApX7Xe1wmUmFLXcfCjHPPlVvw4xbF7gNQm27QgrGnnahtkGys+cm2\n\
LmsBRvYFp+zdmgcrSrTi8Eoyvo23YRRzp+KJ+WmseBfKfhthtDD/i+nrZaWSO7xB\n\
zbo5ucc7AgMBAAECggEAFk4kzKTBQwK6ZE6O7auQ0H0lHKqkkc9/O6fvWtTd74q8\n\
REESJXCsphj0R7cgcTxJSQ/SGnbmcyrJvJ4sj+eG66DReLRLXbx0Ec0+wIDs2eHO\n\
tBmT/joZEStiMS/mO22K2n3aBiKr/7LceNU4MBjUwEDQ+AnydjpWZ0/rld9MWTJb\n\
mQVpMXTMHFcQfdmPFbU69HOx645t/kUAeT+0PTxOGCVNr9EQJgDK8xl/GiINeniS\n\
dsxtxzjssvLj9+1IQtBkLUuxXkvjPpoO00vjAGHHWRoMFelir33yAFGUKgcifYeU\n\
dzDsg/hOSQ2OeL3anVhXEMOkSTqSj3Hi0RJL2HmfUQKBgQDnkK+RetM3nobizJWG\n\
qT4KnEqB0nOneqrI+JVKRvcVO6LaQB3Wd3ov1HPDd40oJ5DD+sjk9T5kb7+bvJ5B\n\
j16oFPgMFV9hCOuhPY/9EHgAQXMPaeMqlqV+QBLaQlcC1nSrQXDAFrSGAzwqwIr1\n\
s6jdlJR5n7PGo5ruwNT3xXCSiQKBgQDIafN+ZDGbLz0qIU0rB73r0K68w1lOATB9\n\
zdUkI0nxponoOuyCcgdCcMcAK9hsqoGJJABKNYns74iyWU/Z+mXGnfa0QCaVWxnT\n\
2m5VVqkwcyy7VeN6vT2jTz7Hy+VnfbCL0ZBoJk8CM4JmIosshTf1zVxiDkoTBLXK\n\
PumY+nIqowKBgES/lvBJF+Y+YWt6M7ZcDrhVuGUclwuVBplN+/ymXvrlzq6fNHyU\n\
0ijbGVdh6f2O6ZLVpMkc6l4lMyzIbe+m4gJi31WvDrcfT916CoKmXgotZDyiQjhF\n\
q3J1EWPNKEoGY3LopdHRq9zRnw5ORbM2mJ7YWtBVEqmZrwjNJS0+Z/KJAoGBAJl3\n\
kK7DeL0V4meFkrsVtZiDd5symAtEm+ZqHQIMR85VMht0K7IEMYzuIWT/Lj6gHotu\n\
1w38i361Ol8gRyZrOU5rngQPb7xFQ7TX+k89ClgAikt2DLjreuy4fSGwAB5MwEmB\n\
E2y9kRjlasBdSWexJ9YBCPJJcO25WJ/jpyuu9IezAoGANZwxnV5IFh161QqwlBOq\n\
yVZaCn7UH5u4GsMGAnfjcjV7N53x9jNO0CBhKoONLpqyYZgujA5uFCKYa42SZMXg\n\
+VSl30jINd5AbCyewqijkyUOk1+4HNWQofdjpnTv2kCgXcElN/Z1BO61Q7XpsvR1\n\
Tu+yL/9HO1w5B0W4bh9NDco=\n\
-----END PRIVATE KEY-----\n";

/// The simulator's public key (SPKI PEM): the demo client's "Alipay public key".
pub const SIM_PUBLIC_KEY_PEM: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtUjfwlUfSOxfK0fXVA0I\n\
I78IQkfaC2j1RjWUS4X80Sw9OBkCKhoT9jr6NiRjMLEabMJaFjvcuGKzDqzOd08x\n\
h+GD37dSbXrziAlqL9f06f+zfGfWgregGYoHG71P6GpHIuQ8yQECdNCw+J0+yP43\n\
onVl7PA3X3fuBRcAxBQXrZd8bD1khBVkdFFlGXc0w3B/E8t3TfJCIi5ENiPqL3mn\n\
SQ84AKV+13tcJlJhS13Hwoxzz5Vb8OMWxe4DUJtu0IKxp52obZBsrPnJti5rAUb2\n\
Bafs3ZoHK0q04vBKMr6Nt2EUc6fiiflprHgXyn4bYbQw/4vp62Wlkju8Qc26ObnH\n\
OwIDAQAB\n\
-----END PUBLIC KEY-----\n";
