import CreditsCore
import CreditsStore
import CreditsWorker
import ServiceLifecycle
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore
import Logging
import Prometheus

public struct ServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// May call `/api/credits/*`, `/api/uploads/*`, `/api/users/*`.
    public var serviceKey: String
    /// May call everything.
    public var adminKey: String
    /// Card fees, for the platform report's margin.
    public var paymentFees: PaymentFeeSchedule
    /// Time source of the reports' windows and sponsorship.
    public var clock: WallClock
    public var sponsorship = SponsorshipRules()
    /// Stripe endpoint secrets (`STRIPE_WEBHOOK_SECRET`, comma-separated during a rotation).
    public var stripeWebhookSecrets: [String] = []
    /// PayPal: the webhook id (`PAYPAL_WEBHOOK_ID`) and the PEM certificate whose key signs the
    /// transmissions (read from `PAYPAL_CERT_FILE`). Both, or the route answers 404.
    public var paypalWebhookId: String?
    public var paypalCertificatePEM: String?
    /// Purchases record a pending purchase and credits arrive with the provider's verified
    /// event; by default the purchase call grants at once and events reconcile it.
    public var requirePaymentConfirmation = false
    /// Served at `/metrics` in Prometheus text format when set (the process bootstraps
    /// swift-metrics with it).
    public var metrics: PrometheusCollectorRegistry?
    /// A connection with no request in progress and nothing read for this long is closed, so
    /// that clients that open connections and sit on them cannot hold the process's file
    /// descriptors for good. Clients' keep-alive pools should let connections go sooner.
    public var idleTimeout: Duration = .seconds(60)

    public init(host: String = "127.0.0.1", port: Int = 8080, serviceKey: String, adminKey: String,
                paymentFees: PaymentFeeSchedule = .stripe, clock: WallClock = .system,
                metrics: PrometheusCollectorRegistry? = nil) {
        self.host = host
        self.port = port
        self.serviceKey = serviceKey
        self.adminKey = adminKey
        self.paymentFees = paymentFees
        self.clock = clock
        self.metrics = metrics
    }
}

extension ServerConfiguration {
    /// The PayPal verifier, when both settings are present (checked at start-up by `serve`).
    var paypalSignature: PayPalSignature? {
        guard let id = paypalWebhookId, let pem = paypalCertificatePEM else { return nil }
        return try? PayPalSignature(webhookId: id, certificatePEM: pem)
    }

    /// Throws a readable error when the PayPal settings are half there or the certificate is unusable.
    public func checkPayPal() throws {
        switch (paypalWebhookId, paypalCertificatePEM) {
        case (nil, nil): return
        case (.some(let id), .some(let pem)): _ = try PayPalSignature(webhookId: id, certificatePEM: pem)
        default: throw CreditsError.validation("PAYPAL_WEBHOOK_ID", "PAYPAL_WEBHOOK_ID and PAYPAL_CERT_FILE go together: set both or neither")
        }
    }
}

/// How long `/readyz` waits for the database: a probe answers in seconds, not at the store's
/// 30 s deadline.
let readinessLimit: Duration = .seconds(2)

/// Builds the router: every route, the error format and authentication. Tests call this too.
public func buildRouter(
    store: any CreditStore, configuration: ServerConfiguration, gasManager: FilecoinGasManager? = nil
) -> Router<BasicRequestContext> {
    let router = Router(context: BasicRequestContext.self)
    // Outermost: requests by route and status with latency, seen after errors became responses.
    router.add(middleware: MetricsMiddleware())
    // One log line per request with its id; headers (keys) are never logged.
    router.add(middleware: LogRequestsMiddleware(.info))
    router.add(middleware: ErrorMiddleware())
    router.add(middleware: AuthMiddleware(serviceKey: configuration.serviceKey, adminKey: configuration.adminKey))
    router.get("healthz") { _, _ in
        try JSONResponse.make(.ok, ["status": "ok"])
    }
    // Readiness: the database answers too. Any failure is 503, its cause logged, not sent.
    router.get("readyz") { _, context in
        do {
            try await store.ping(within: readinessLimit)
        } catch {
            context.logger.warning("not ready: the database did not answer", metadata: ["reason": "\(DatabaseOutage.describe(error))"])
            return JSONResponse.error(CreditsError(.unavailable, "not ready: the database did not answer"))
        }
        return try JSONResponse.make(.ok, ["status": "ok", "database": "ok"])
    }
    router.get("openapi.yaml") { _, _ in
        Response(status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: OpenAPISpec.yaml)))
    }
    if let registry = configuration.metrics {
        router.get("metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
    }
    let manager = CreditManager(store: store)
    router.get("admin") { _, _ in
        try await renderDashboard(manager: manager, gas: gasManager, configuration: configuration)
    }
    let credits = router.group("api/credits")
    CreditsController(manager: manager, requirePaymentConfirmation: configuration.requirePaymentConfirmation,
                      clock: configuration.clock)
        .addRoutes(to: credits)
    UsersController(manager: manager, rules: configuration.sponsorship, clock: configuration.clock)
        .addRoutes(users: router.group("api/users"), credits: credits)
    UploadsController(manager: manager).addRoutes(to: router.group("api/uploads"))
    StripeWebhookController(
        manager: manager,
        signature: configuration.stripeWebhookSecrets.isEmpty ? nil : StripeSignature(secrets: configuration.stripeWebhookSecrets),
        clock: configuration.clock
    ).addRoutes(to: router.group("api/webhooks"))
    PayPalWebhookController(manager: manager, signature: configuration.paypalSignature)
        .addRoutes(to: router.group("api/webhooks"))
    AdminController(manager: manager, gas: gasManager, paymentFees: configuration.paymentFees, clock: configuration.clock)
        .addRoutes(to: router.group("api/admin"))
    return router
}

/// The whole HTTP service, ready to run (`try await app.runService()`).
public func buildApplication(
    store: any CreditStore, configuration: ServerConfiguration, logger: Logger,
    gasManager: FilecoinGasManager? = nil, services: [any Service] = [],
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    Application(
        router: buildRouter(store: store, configuration: configuration, gasManager: gasManager),
        server: .http1(configuration: .init(idleTimeout: .nanoseconds(
            configuration.idleTimeout.components.seconds * 1_000_000_000 + configuration.idleTimeout.components.attoseconds / 1_000_000_000))),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "credits"),
        services: services,
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
        logger: logger
    )
}
