import CreditsCore
import Metrics

/// `credits_ledger_operations_total{kind, outcome}`: every ledger operation the store answered.
/// A no-op until the process bootstraps a metrics backend (`credits serve` uses Prometheus).
enum LedgerMetrics {
    static func record(_ operation: LedgerOperation, _ result: Result<OperationResult, any Error>) {
        let kind: String = switch operation {
        case .purchase: "purchase"
        case .spend: "spend"
        case .adjust: "adjust"
        case .upload: "upload"
        case .capture: "capture"
        case .release: "release"
        case .milestone: "milestone"
        case .sponsor: "sponsor"
        case .paymentEvent: "payment_event"
        case .expire: "expire"
        }
        let outcome: String = switch result {
        case .success(let r) where r.replayed: "replayed"
        case .success(let r):
            if case .rejected(let e) = r.outcome { e.code.rawValue.lowercased() } else { "applied" }
        case .failure(let e as CreditsError): e.code.rawValue.lowercased()
        case .failure: "error"
        }
        Counter(label: "credits_ledger_operations_total", dimensions: [("kind", kind), ("outcome", outcome)]).increment()
    }
}

extension CreditStore {
    /// Runs `execute` through the metrics.
    func measured(_ operation: LedgerOperation, _ body: () async throws -> OperationResult) async throws -> OperationResult {
        do {
            let result = try await body()
            LedgerMetrics.record(operation, .success(result))
            return result
        } catch {
            LedgerMetrics.record(operation, .failure(error))
            throw error
        }
    }
}
