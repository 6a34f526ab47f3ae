import ArgumentParser
import CreditsChain
import CreditsCore
import CreditsServer
import CreditsWorker
import CreditsStore
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the HTTP API.",
        discussion: """
            Keys come from CREDITS_API_KEY (service) and CREDITS_ADMIN_KEY (admin). When either is \
            missing, random keys are generated and printed once (development only).
            """)

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0 picks a free one).") var port = 8080
    @Option(help: "Card fee rate in basis points, for the platform report's margin (Stripe: 290 = 2.9%).")
    var paymentFeeBasisPoints: Int64 = 290
    @Option(help: "Card fee per purchase in cents (Stripe: 30).") var paymentFeeFixedCents: Int64 = 30
    @Option(help: "Close a connection after this many seconds with no request in progress and nothing read (1...3600).")
    var idleTimeout = 60
    @Flag(help: "Record purchases as pending; credits arrive with the provider's verified webhook event.")
    var requirePaymentConfirmation = false
    @OptionGroup var store: StoreOptions
    @OptionGroup var gas: GasOptions

    func validate() throws {
        // Until 2026-12-05 a port past 65535 was taken modulo 65536: --port 99999 listened on 34463.
        guard (0...65_535).contains(port) else { throw ValidationError("--port: 0...65535 (0 picks a free one)") }
        guard (0...10_000).contains(paymentFeeBasisPoints) else { throw ValidationError("--payment-fee-basis-points: 0...10000") }
        guard (0...10_000).contains(paymentFeeFixedCents) else { throw ValidationError("--payment-fee-fixed-cents: 0...10000") }
        guard (1...3_600).contains(idleTimeout) else { throw ValidationError("--idle-timeout: 1...3600 seconds") }
    }

    func run() async throws {
        MemoryTuning.apply()
        let openFiles = ProcessLimits.raiseOpenFiles()
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label) }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        var logger = Logger(label: "credits")
        logger.logLevel = .info
        if let openFiles {
            logger.notice("open files limit", metadata: ["soft": "\(openFiles.soft)", "hard": "\(openFiles.hard)"])
        }
        // The catalog and the database first: a bad configuration fails before anything is printed.
        let ledger = try await store.openStore()
        // Then the chain: a Lotus node that cannot be reached or refuses the token stops here.
        let manager: FilecoinGasManager
        do {
            manager = try await gas.makeManager(
                store: ledger, clock: .system, logger: logger,
                // A port picked at random (0) names no instance across restarts: the process does.
                instance: "\(ProcessInfo.processInfo.hostName):\(host):\(port == 0 ? "pid\(getpid())" : String(port))")
        } catch {
            try? await ledger.close()
            throw error
        }
        let env = ProcessInfo.processInfo.environment
        var serviceKey = env["CREDITS_API_KEY"] ?? ""
        var adminKey = env["CREDITS_ADMIN_KEY"] ?? ""
        if serviceKey.isEmpty || adminKey.isEmpty {
            serviceKey = serviceKey.isEmpty ? Self.randomKey(prefix: "svc_") : serviceKey
            adminKey = adminKey.isEmpty ? Self.randomKey(prefix: "adm_") : adminKey
            // Printed once, to the terminal that started the server; never logged afterwards.
            print("""
                WARNING: CREDITS_API_KEY or CREDITS_ADMIN_KEY is not set; generated keys for this run only:
                  service key: \(serviceKey)
                  admin key:   \(adminKey)
                Set both variables in production.
                """)
        }
        guard serviceKey != adminKey else {
            try? await ledger.close()
            throw ValidationError("CREDITS_API_KEY and CREDITS_ADMIN_KEY must differ")
        }
        let location = PostgresStore.redacted(store.databaseLocation)
        var configuration = ServerConfiguration(
            host: host, port: port, serviceKey: serviceKey, adminKey: adminKey,
            paymentFees: PaymentFeeSchedule(basisPoints: paymentFeeBasisPoints, fixedCents: paymentFeeFixedCents),
            metrics: registry)
        configuration.stripeWebhookSecrets = (env["STRIPE_WEBHOOK_SECRET"] ?? "")
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        configuration.requirePaymentConfirmation = requirePaymentConfirmation
        configuration.idleTimeout = .seconds(idleTimeout)
        configuration.paypalWebhookId = env["PAYPAL_WEBHOOK_ID"].flatMap { $0.isEmpty ? nil : $0 }
        do {
            if let path = env["PAYPAL_CERT_FILE"], !path.isEmpty {
                configuration.paypalCertificatePEM = try String(contentsOfFile: path, encoding: .utf8)
            }
            try configuration.checkPayPal()
        } catch {
            try? await ledger.close()
            throw ValidationError("PayPal webhook settings: \(error)")
        }
        let app = buildApplication(
            store: ledger,
            configuration: configuration,
            logger: logger,
            gasManager: manager,
            services: [
                GasManagerService(manager: manager, tickMs: gas.tickMs, logger: logger),
                LotExpiryService(manager: CreditManager(store: ledger), clock: .system, logger: logger),
            ],
            onServerRunning: { [host] port in
                print("credits listening on http://\(host):\(port) (database \(location))")
                fflush(nil)
            })
        do {
            try await app.runService()
        } catch {
            try? await ledger.close()
            throw error
        }
        try await ledger.close()
        logger.notice("credits stopped")
    }

    static func randomKey(prefix: String) -> String {
        var rng = SystemRandomNumberGenerator()
        return prefix + (0..<24).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
    }
}
