import CreditsCore
import CreditsStore
import CreditsWorker
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore

/// `/api/credits/*`: balance, purchase, estimate, spend, transactions (API.md).
struct CreditsController {
    let manager: CreditManager

    struct PurchaseBody: Decodable {
        var userId: String
        var package: String
        var paymentMethod: String
        var paymentId: String
    }

    struct SpendBody: Decodable {
        var userId: String
        var credits: Int64
        var fileUploadId: String
        var description: String?
    }

    struct EstimateBody: Decodable {
        var fileType: String
        var fileCount: Int?
        var features: [String]?
        var userId: String?
    }

    /// The seed's createSponsoredUpload; usdValue and gasValue are dollars, as a JSON number
    /// ("0.60") or string, read exactly (no floating point) to cents.
    struct SponsoredUploadBody: Decodable {
        var userId: String
        var reason: String?
        var fileUploadId: String
        var creditsCost: Int64
        var usdValue: Cents.Text?
        var gasValue: Cents.Text?
    }

    struct MilestoneBody: Decodable {
        var userId: String
        var milestone: String
    }

    struct EntryBody: Encodable {
        var id: String
        var type: String
        var credits: Int64
        var balanceAfter: Int64
        var counterparty: String
        var reference: String
        var description: String
        var createdAt: String
    }

    struct PageBody: Encodable {
        var data: [EntryBody]
        var nextCursor: String?
    }

    func addRoutes(to group: RouterGroup<BasicRequestContext>) {
        group.get("balance") { request, _ in
            let userId = try request.uri.requiredQuery("userId")
            return try JSONResponse.make(.ok, try await manager.getUserCredits(userId))
        }
        group.post("purchase") { request, _ in
            let body = try await JSONResponse.decode(PurchaseBody.self, from: request)
            guard let method = PaymentMethod(rawValue: body.paymentMethod) else {
                throw CreditsError.validation("paymentMethod", "must be one of: stripe, paypal")
            }
            let result = try await manager.purchaseCredits(
                body.userId, body.package, paymentMethod: method, paymentId: body.paymentId,
                idempotencyKey: request.headers[.idempotencyKey])
            return try LedgerResponse.make(result)
        }
        group.post("estimate") { request, _ in
            let body = try await JSONResponse.decode(EstimateBody.self, from: request)
            if let userId = body.userId { try Identifier.check(userId, field: "userId") }
            let estimate = try manager.estimateUploadCost(
                EstimateRequest(fileType: body.fileType, fileCount: body.fileCount ?? 1, features: body.features ?? []))
            return try JSONResponse.make(.ok, estimate)
        }
        group.post("spend") { request, _ in
            let body = try await JSONResponse.decode(SpendBody.self, from: request)
            let result = try await manager.spendCreditsForUpload(
                body.userId, body.credits, fileUploadId: body.fileUploadId, description: body.description ?? "",
                idempotencyKey: request.headers[.idempotencyKey])
            return try LedgerResponse.make(result)
        }
        group.post("milestones") { request, _ in
            let body = try await JSONResponse.decode(MilestoneBody.self, from: request)
            let result = try await manager.store.execute(
                .milestone(MilestoneRequest(userId: body.userId, milestone: body.milestone)),
                idempotencyKey: request.headers[.idempotencyKey])
            return try LedgerResponse.make(result)
        }
        group.post("sponsored-uploads") { request, _ in
            let body = try await JSONResponse.decode(SponsoredUploadBody.self, from: request)
            let result = try await manager.store.execute(
                .sponsor(SponsoredUploadRequest(
                    userId: body.userId, fileUploadId: body.fileUploadId, credits: body.creditsCost, reason: body.reason ?? "",
                    usdValueCents: try Cents.parse(body.usdValue, field: "usdValue"),
                    gasValueCents: try Cents.parse(body.gasValue, field: "gasValue"))),
                idempotencyKey: request.headers[.idempotencyKey])
            return try LedgerResponse.make(result)
        }
        group.get("transactions") { request, _ in
            let userId = try request.uri.requiredQuery("userId")
            let limit = try request.uri.intQuery("limit") ?? Limits.pageSizeDefault
            let page = try await manager.getTransactions(userId, limit: limit, cursor: request.uri.queryParameters.get("cursor"))
            let body = PageBody(
                data: page.data.map {
                    EntryBody(
                        id: $0.id, type: $0.type, credits: $0.credits, balanceAfter: $0.balanceAfter,
                        counterparty: $0.counterparty, reference: $0.reference, description: $0.description,
                        createdAt: Timestamp.iso8601(ms: $0.createdAtMs))
                },
                nextCursor: page.nextCursor)
            return try JSONResponse.make(.ok, body)
        }
    }
}

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

    struct ProcessBody: Decodable {
        var batchId: String?
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

    struct AdjustmentBody: Decodable {
        var userId: String
        var credits: Int64
        var adjustmentId: String
        var reason: String
    }

    func addRoutes(to group: RouterGroup<BasicRequestContext>) {
        group.post("adjustments") { request, _ in
            let body = try await JSONResponse.decode(AdjustmentBody.self, from: request)
            let result = try await manager.adjustCredits(
                body.userId, body.credits, adjustmentId: body.adjustmentId, reason: body.reason,
                idempotencyKey: request.headers[.idempotencyKey])
            return try LedgerResponse.make(result)
        }
        group.get("platform-stats") { request, _ in
            let days = try request.uri.intQuery("days") ?? 30
            guard (1...366).contains(days) else { throw CreditsError.validation("days", "must be between 1 and 366") }
            let rate = gas?.config.usdPerFil ?? DecimalRate("5")!
            let stats = try await manager.getPlatformCreditStats(days: days, nowMs: clock.nowMs(), usdPerFil: rate, fees: paymentFees)
            return try JSONResponse.make(.ok, PlatformStatsBody(stats))
        }
        group.post("process-batch") { request, _ in
            let gas = try requireGas()
            let buffer = try await request.body.collect(upTo: Limits.requestBodyBytesMax)
            var batchId: String?
            if buffer.readableBytes > 0 {
                let body = try JSONResponse.decode(ProcessBody.self, data: Data(buffer.readableBytesView))
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

/// Integer hundredths as a decimal string: 1234 → "12.34", -5 → "-0.05".
enum Decimal2 {
    static func text(_ hundredths: Int64) -> String {
        let sign = hundredths < 0 ? "-" : ""
        let m = hundredths.magnitude
        let frac = m % 100
        return "\(sign)\(m / 100).\(frac < 10 ? "0" : "")\(frac)"
    }
}

/// The HTTP form of a ledger outcome: 201 with the receipt, or the remembered rejection; a replay
/// is marked `Idempotent-Replayed: true`.
enum LedgerResponse {
    static func make(_ result: OperationResult) throws -> Response {
        switch result.outcome {
        case .purchased(let receipt): try JSONResponse.make(.created, receipt, replayed: result.replayed)
        case .spent(let receipt): try JSONResponse.make(.created, receipt, replayed: result.replayed)
        case .adjusted(let receipt): try JSONResponse.make(.created, receipt, replayed: result.replayed)
        case .queued(let receipt): try JSONResponse.make(.accepted, receipt, replayed: result.replayed)
        case .settled(let receipt): try JSONResponse.make(.created, receipt, replayed: result.replayed)
        case .milestoneGranted(let receipt): try JSONResponse.make(.created, receipt, replayed: result.replayed)
        case .sponsoredUpload(let receipt): try JSONResponse.make(.created, receipt, replayed: result.replayed)
        case .rejected(let error): JSONResponse.error(error, replayed: result.replayed)
        }
    }
}

enum Timestamp {
    static func iso8601(ms: Int64) -> String {
        let date = Date(timeIntervalSince1970: TimeInterval(ms) / 1000)
        return date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }
}

extension URI {
    func requiredQuery(_ name: String) throws(CreditsError) -> String {
        guard let value = queryParameters.get(name), !value.isEmpty else {
            throw .validation(name, "the query parameter '\(name)' is required")
        }
        return value
    }

    func intQuery(_ name: String) throws(CreditsError) -> Int? {
        guard let raw = queryParameters.get(name) else { return nil }
        guard let value = Int(raw) else { throw .validation(name, "must be a whole number") }
        return value
    }
}

/// Dollar amounts from JSON to integer cents without floating point.
enum Cents {
    /// The literal text of a JSON number or string.
    struct Text: Decodable {
        var text: String

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) {
                text = s
            } else {
                // Decimal keeps the digits the number was written with.
                text = "\(try c.decode(Decimal.self))"
            }
        }
    }

    /// "0.6" → 60; at most two decimals, not negative.
    static func parse(_ value: Text?, field: String) throws(CreditsError) -> Int64 {
        guard let value else { return 0 }
        let parts = value.text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, !parts[0].isEmpty, parts[0].allSatisfy(\.isNumber), let whole = Int64(parts[0]),
              whole <= 1_000_000
        else { throw .validation(field, "must be an amount in dollars such as 0.60") }
        var cents = whole * 100
        if parts.count == 2 {
            let f = parts[1]
            guard !f.isEmpty, f.count <= 2, f.allSatisfy(\.isNumber), let n = Int64(f) else {
                throw .validation(field, "must be an amount in dollars with at most two decimals")
            }
            cents += f.count == 1 ? n * 10 : n
        }
        return cents
    }
}
