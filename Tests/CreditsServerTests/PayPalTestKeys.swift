/// A key pair and self-signed certificate made for these tests with
/// `openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=StreamVault test PayPal signer (not PayPal)"`.
/// They sign test transmissions the way PayPal signs real ones; they are not PayPal's.
enum PayPalTestKeys {
    static let privateKeyPEM = """
        -----BEGIN PRIVATE KEY-----
        MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCWHCzUDgW38EUM
        W7pDn13QISbjf5cADSYpNl7mNsL/3BiPU88qRJipTJcjlvBXbGBu8BsDihB1/ojo
        +Kye2iQi66jsVafRpRpw5D4SUcZx8CHTXrX6T8VvdXWxfPbcEh7lZ/IdJRNrp10y
        CdcGNjdwfnW+KFHrwJws90ckzBAGat/vETW7hgcGk3eitdA0KDO8V4wIS5emVPz4
        vIyOGk3138REOmD5AQcQ+LqV7MJtzti1ifdCGlnpKv9F06RYvRaJ5il5FBlGTCQb
        xo/nkZAtoxc8gfzOiyC8gfv9Ph4cT+8YF2jhMUELJuQVVhEWqfkx6Pg6O8jg+lUh
        QDBF6Ld/AgMBAAECggEAMX/K/IY/Nn+BlWiuDFyCB/7WnxBUz8yGN/LY6ltGhC6k
        3qaJWuvR14oNEMxWJs3zIsIEdm9RrEcqCIDwE1Xlsqo5Qu2f8E7cYDuziED1Cl9g
        GB5ULd2eQnnePI/zq3BCRe239gpi1A4VekmqYT8BmxPoabNMCEy0c1N7X1P3ONYF
        4kwtUlt/5ym+BS8Bz5Y0htIgvtj3YtZpeTK4DPiReBMW4hTJNY0jevvD9HUMvR+Q
        hUvRBIcFHGzrSJYqkEcH2HKcktQSfXOfX4nmKUXhF1EBljeoWU+d/wPKsZPqPgMe
        1K5JlWddX7xaTVmt91MJpdVnQ8u9b/JGXc8xQ4wfKQKBgQDNeU3df1vjZ8XYrl91
        dwdb1B131B9xwKpMuyAM53T+urvYu4YVUWV06JU2S5eHMwecmqf2TH2VBh2myXPZ
        Y0MiJBNtlJ8JRdMjzUdu9k+9mtw5G5dPLxv/W+jV0uwYIG+LVXAA6tpT96K0M+IO
        l4Zr0Wc0xyEvkKZXl214nM1BLQKBgQC7BbBlV43jw3VX/K0sKnQC9Fxv2u3xYAZM
        4e8q6+aiTFJtX77PqRidcgT524PmzWoAJKPJKVq+qZ+M2aeZst9FQGumwRcAwASq
        XQEm5hkOiNlQEiRfW5r31qHrHxJOjV/aQabMgFsWKw6nAXj+O2qReicJAYOoHOim
        1nuOFbeO2wKBgF9u8upop94UKcE9JBsjwKg2+cTZIg2sZayj0PwNWLqjMnI0js9B
        8fR9vifsriFeYy+qaU6tMjrQD1+S+5rBTsIBrYBc4gzlgG6FfqMcBedTkOt5VCqz
        /7X4E0mU4JFIJ2a4tP/IFMWhI9G8s0cBu65CIURTJKe58HiIXZECixa1AoGAGlHP
        pENxFXehYPOPT2LeFrha9ebii5CO8mztYqX2PCrvgrLxwHm0nBu6tYr+AhIwc7q0
        ThAC1Eg8yu6qlofEwhMx0zLjUNi1D2CtU9MX/aKmqo0TD1Rt96j9+n/R7LoanjWV
        CryZlQIUOs6LP4QPGFAPhEXxSExhNXGDy9gkj/cCgYAS0mvrYp2jrKyCf4oFyAQI
        fyLc11l4hL37LxikI9KdFS1uhx5avmLVvhi4ARbH1KZopVxlhO7QulPEIe+IuulD
        tCkdkOFhh7lcdCcs3Sll9bgyCLJD47VrWNK3omaw8nRfS0Zlsc2SRdBNlfH4x0m5
        W/J0AeRKAVkkdOOGdIF+lw==
        -----END PRIVATE KEY-----
        """

    static let certificatePEM = """
        -----BEGIN CERTIFICATE-----
        MIIDTzCCAjegAwIBAgIUeLWs9TFZLKTgG7fRkLPPZaF+dk8wDQYJKoZIhvcNAQEL
        BQAwNjE0MDIGA1UEAwwrU3RyZWFtVmF1bHQgdGVzdCBQYXlQYWwgc2lnbmVyIChu
        b3QgUGF5UGFsKTAgFw0yNjEyMDExNjA3NDFaGA8yMTI2MTEwNzE2MDc0MVowNjE0
        MDIGA1UEAwwrU3RyZWFtVmF1bHQgdGVzdCBQYXlQYWwgc2lnbmVyIChub3QgUGF5
        UGFsKTCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBAJYcLNQOBbfwRQxb
        ukOfXdAhJuN/lwANJik2XuY2wv/cGI9TzypEmKlMlyOW8FdsYG7wGwOKEHX+iOj4
        rJ7aJCLrqOxVp9GlGnDkPhJRxnHwIdNetfpPxW91dbF89twSHuVn8h0lE2unXTIJ
        1wY2N3B+db4oUevAnCz3RyTMEAZq3+8RNbuGBwaTd6K10DQoM7xXjAhLl6ZU/Pi8
        jI4aTfXfxEQ6YPkBBxD4upXswm3O2LWJ90IaWekq/0XTpFi9FonmKXkUGUZMJBvG
        j+eRkC2jFzyB/M6LILyB+/0+HhxP7xgXaOExQQsm5BVWERap+THo+Do7yOD6VSFA
        MEXot38CAwEAAaNTMFEwHQYDVR0OBBYEFPjLbv1ceDlQ2IKHWfL3jdyL6gk4MB8G
        A1UdIwQYMBaAFPjLbv1ceDlQ2IKHWfL3jdyL6gk4MA8GA1UdEwEB/wQFMAMBAf8w
        DQYJKoZIhvcNAQELBQADggEBAA1uxTVDsZmNBX7KMNbzpmG8VpFGK8p7NT016lyh
        +VB8jOgieLyM3Nk0K7ulMMQAQNgha1++piLUsNsOtDulrKlFu7iiAVNT2DemUgpt
        0EsHGZBXS3eQfP5CNoNI7NkyzIYXRyKl3cZmPDSF1pVbfRbqrDK3bLIf15g7J2P9
        nj4PZ3MsTNqhJ5/ci2XOc7NsJGAXXe73J7JJrsZta+hf1v3ad52tfif5US4pSHx+
        PgME+8133Ls5Ogl2JQ/C+WIn1n6uZGPQQZ2RZZZZSL/5fqtVVJ0XkqkuHhXULBuU
        dfDdMeO4vuTvGCzX9/xaU3WJB9otuW0+8xs/jSccXepFhjc=
        -----END CERTIFICATE-----
        """
}
