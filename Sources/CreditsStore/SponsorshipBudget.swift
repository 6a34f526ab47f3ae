import CreditsCore
import Foundation

/// The sponsorship budget is counted per UTC calendar month.
enum SponsorshipBudget {
    /// "2026-12" for a time in December 2026 (UTC).
    static func month(_ ms: Int64) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month], from: Date(timeIntervalSince1970: TimeInterval(ms / 1000)))
        let m = parts.month ?? 1
        return "\(parts.year ?? 1970)-\(m < 10 ? "0" : "")\(m)"
    }

    /// Whether the batch can sponsor anything: it queues an upload or releases one.
    static func needed(_ ops: [PreparedOperation]) -> Bool {
        ops.contains { op in
            switch op.operation {
            case .upload, .release, .sponsor: true
            default: false
            }
        }
    }

    /// Net sponsored credits the plan adds to the month (holds minus releases).
    static func delta(_ plan: BatchPlan) -> Int64 {
        plan.journal.reduce(Int64(0)) { sum, row in
            switch row.kind {
            case .sponsoredHold, .sponsoredUpload: sum + row.amount
            case .sponsoredRelease: sum - row.amount
            default: sum
            }
        }
    }
}
