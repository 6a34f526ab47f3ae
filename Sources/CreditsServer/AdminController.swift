import CreditsCore
import CreditsStore
import CreditsWorker
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore

/// `/api/admin/*` routes: adjustments, and the gas manager's batch and stats routes.
struct AdminController {
    let manager: CreditManager
    let gas: FilecoinGasManager?
    let paymentFees: PaymentFeeSchedule
    let clock: WallClock

    /// The platform report; money as decimal strings with exact cents beside, ratios as percent
    /// strings. Each figure is defined in the README.
    struct PlatformStatsBody: Encodable {
        var days: Int
        var totalRevenue: String
        var totalRevenueCents: Int64
        var refunds: String
        var netRevenue: String
        var netRevenueCents: Int64
        var paymentFees: String
        var gasSpentUsd: String
        var grossMargin: String
        var grossMarginCents: Int64
        var grossMarginPercent: String
        var purchases: Int
        var creditsSold: Int64
        var creditsSpent: Int64
        var creditsOutstanding: Int64
        var activeUsers: Int
        var payingUsers: Int
        var conversionRate: String
        var averageUploadCost: AverageCost

        struct AverageCost: Encodable {
            var credits: String
            var usd: String
        }

        init(_ s: PlatformStats) {
            days = s.days
            totalRevenue = Decimal2.text(s.totalRevenueCents)
            totalRevenueCents = s.totalRevenueCents
            refunds = Decimal2.text(s.refundsCents)
            netRevenue = Decimal2.text(s.netRevenueCents)
            netRevenueCents = s.netRevenueCents
            paymentFees = Decimal2.text(s.paymentFeesCents)
            gasSpentUsd = Decimal2.text(s.gasSpentUsdCents)
            grossMargin = Decimal2.text(s.grossMarginCents)
            grossMarginCents = s.grossMarginCents
            grossMarginPercent = Decimal2.text(s.grossMarginPPM / 100)
            purchases = s.purchases
            creditsSold = s.creditsSold
            creditsSpent = s.creditsSpent
            creditsOutstanding = s.creditsOutstanding
            activeUsers = s.activeUsers
            payingUsers = s.payingUsers
            conversionRate = Decimal2.text(s.conversionRatePPM / 100)
            averageUploadCost = AverageCost(
                credits: Decimal2.text(s.averageUploadCostCreditsHundredths), usd: Decimal2.text(s.averageUploadCostUsdCents))
        }
    }

    struct ProcessBody: Decodable, ClosedFields {
        var batchId: String?

        enum CodingKeys: String, CodingKey, CaseIterable { case batchId }
        static let fields: Set<String> = keyNames(CodingKeys.self)
    }

    /// API.md's gas-stats: USD as decimal strings (and exact cents beside them), attoFIL as
    /// decimal strings.
    struct GasStatsBody: Encodable {
        var totalSavings: String
        var totalSavingsCents: Int64
        var successRate: String
        var batches: Int
        var uploads: Int
        var averageBatchSize: String
        var gasSpentAttoFil: String
        var gasSpentUsd: String
        var gasSpentUsdCents: Int64
        var individualCostAttoFil: String
        var individualCostUsd: String
        var batchingSavingsAttoFil: String
        var batchingSavingsUsd: String
        var batchingSavingsPercent: String
        var timingSavingsAttoFil: String
        var timingSavingsUsd: String
        var days: Int

        init(_ s: GasStats, days: Int) {
            let total = s.batchingSavingsUsdCents + s.timingSavingsUsdCents
            totalSavings = Decimal2.text(total)
            totalSavingsCents = total
            successRate = Decimal2.text(s.successRatePPM / 100)
            batches = s.batches
            uploads = s.uploads
            averageBatchSize = Decimal2.text(s.averageBatchSizeHundredths)
            gasSpentAttoFil = s.gasSpentAttoFil
            gasSpentUsd = Decimal2.text(s.gasSpentUsdCents)
            gasSpentUsdCents = s.gasSpentUsdCents
            individualCostAttoFil = s.individualCostAttoFil
            individualCostUsd = Decimal2.text(s.individualCostUsdCents)
            batchingSavingsAttoFil = s.batchingSavingsAttoFil
            batchingSavingsUsd = Decimal2.text(s.batchingSavingsUsdCents)
            batchingSavingsPercent = Decimal2.text(s.batchingSavingsPPM / 100)
            timingSavingsAttoFil = s.timingSavingsAttoFil
            timingSavingsUsd = Decimal2.text(s.timingSavingsUsdCents)
            self.days = days
        }
    }

    struct AdjustmentBody: Decodable, ClosedFields {
        var userId: String
        var credits: Int64
        var adjustmentId: String
        var reason: String
        /// The lot a grant makes: promotional (default, expires) or paid (never expires).
        var category: String?

        enum CodingKeys: String, CodingKey, CaseIterable { case userId, credits, adjustmentId, reason, category }
        static let fields: Set<String> = keyNames(CodingKeys.self)
    }

    func addRoutes(to group: RouterGroup<BasicRequestContext>) {
        group.post("adjustments") { request, _ in
            let body = try await JSONResponse.decodeClosed(AdjustmentBody.self, from: request)
            guard let category = LotCategory(rawValue: body.category ?? "promotional") else {
                throw CreditsError.validation("category", "must be paid or promotional")
            }
            let result = try await manager.adjustCredits(
                body.userId, body.credits, adjustmentId: body.adjustmentId, reason: body.reason, category: category,
                idempotencyKey: request.headers[.idempotencyKey])
            return try LedgerResponse.make(result)
        }
        group.get("platform-stats") { request, _ in
            let days = try request.uri.intQuery("days") ?? 30
            guard (1...366).contains(days) else { throw CreditsError.validation("days", "must be between 1 and 366") }
            let rate = gas?.config.usdPerFil ?? DecimalRate.defaultUsdPerFil
            let stats = try await manager.getPlatformCreditStats(days: days, nowMs: clock.nowMs(), usdPerFil: rate, fees: paymentFees)
            return try JSONResponse.make(.ok, PlatformStatsBody(stats))
        }
        group.post("process-batch") { request, _ in
            let gas = try requireGas()
            let buffer = try await request.body.collect(upTo: Limits.requestBodyBytesMax)
            var batchId: String?
            if buffer.readableBytes > 0 {
                let body = try JSONResponse.decodeClosed(ProcessBody.self, data: Data(buffer.readableBytesView))
                batchId = body.batchId
                if let batchId { try Identifier.check(batchId, field: "batchId") }
            }
            let sent = try await gas.processNow(batchId: batchId)
            return try JSONResponse.make(.ok, ["batches": sent])
        }
        group.get("gas-stats") { request, _ in
            let gas = try requireGas()
            let days = try request.uri.intQuery("days") ?? 7
            guard (1...366).contains(days) else { throw CreditsError.validation("days", "must be between 1 and 366") }
            return try JSONResponse.make(.ok, GasStatsBody(try await gas.getGasStats(days: days), days: days))
        }
    }

    private func requireGas() throws(CreditsError) -> FilecoinGasManager {
        guard let gas else { throw CreditsError(.notFound, "the gas manager is not running in this process") }
        return gas
    }
}
