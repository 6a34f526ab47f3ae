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
    /// `--require-payment-confirmation`: purchases wait for the provider's event.
    var requirePaymentConfirmation = false
    /// Tells which lots have expired (`GET /api/credits/lots`).
    var clock: WallClock = .system

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
        /// The lots the row took credits from or put them into.
        var lots: [LotPart]
    }

    struct LotPart: Encodable {
        var lotId: Int64
        var credits: Int64
    }

    /// The user's balances and what they owe (a payment reversal's arrears).
    struct BalanceBody: Encodable {
        var userId: String
        var balance: Int64
        var reserved: Int64
        var totalEarned: Int64
        var totalSpent: Int64
        var totalPurchased: Int64
        var arrears: Int64
        /// Credits of promotional lots expiring within 30 days, and when the next lot expires.
        var expiringSoon: Int64
        var nextExpiryAt: String?

        init(_ c: UserCredits) {
            expiringSoon = c.expiringSoon
            nextExpiryAt = c.nextExpiryAtMs.map { Timestamp.iso8601(ms: $0) }
            userId = c.userId
            balance = c.balance
            reserved = c.reserved
            totalEarned = c.totalEarned
            totalSpent = c.totalSpent
            totalPurchased = c.totalPurchased
            arrears = max(0, -c.balance)
        }
    }

    struct PageBody: Encodable {
        var data: [EntryBody]
        var nextCursor: String?
    }

    struct LotBody: Encodable {
        var lotId: Int64
        var category: String
        var source: String
        var granted: Int64
        var remaining: Int64
        /// Absent for paid credits, which never expire.
        var expiresAt: String?
        var expired: Bool
        var createdAt: String

        init(_ lot: CreditLot, nowMs: Int64) {
            lotId = lot.id
            category = lot.category.rawValue
            source = lot.source
            granted = lot.granted
            remaining = lot.remaining
            expiresAt = lot.expiresAtMs.map(Timestamp.iso8601(ms:))
            expired = lot.isExpired(at: nowMs)
            createdAt = Timestamp.iso8601(ms: lot.createdAtMs)
        }
    }

    struct LotPageBody: Encodable {
        var userId: String
        var data: [LotBody]
        var nextCursor: String?
    }

    func addRoutes(to group: RouterGroup<BasicRequestContext>) {
        group.get("balance") { request, _ in
            let userId = try request.uri.requiredQuery("userId")
            return try JSONResponse.make(.ok, BalanceBody(try await manager.getUserCredits(userId)))
        }
        group.post("purchase") { request, _ in
            let body = try await JSONResponse.decode(PurchaseBody.self, from: request)
            guard let method = PaymentMethod(rawValue: body.paymentMethod) else {
                throw CreditsError.validation("paymentMethod", "must be one of: stripe, paypal")
            }
            let result = try await manager.purchaseCredits(
                body.userId, body.package, paymentMethod: method, paymentId: body.paymentId,
                idempotencyKey: request.headers[.idempotencyKey], grantAtOnce: !requirePaymentConfirmation)
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
            let page = try await manager.getTransactions(userId, limit: limit, cursor: try request.uri.singleQuery("cursor"))
            let body = PageBody(
                data: page.data.map {
                    EntryBody(
                        id: $0.id, type: $0.type, credits: $0.credits, balanceAfter: $0.balanceAfter,
                        counterparty: $0.counterparty, reference: $0.reference, description: $0.description,
                        createdAt: Timestamp.iso8601(ms: $0.createdAtMs),
                        lots: $0.lots.parts.map { LotPart(lotId: $0.lotId, credits: $0.credits) })
                },
                nextCursor: page.nextCursor)
            return try JSONResponse.make(.ok, body)
        }
        group.get("lots") { request, _ in
            let userId = try request.uri.requiredQuery("userId")
            let limit = try request.uri.intQuery("limit") ?? Limits.pageSizeDefault
            let page = try await manager.getLots(userId, limit: limit, cursor: try request.uri.singleQuery("cursor"))
            let now = clock.nowMs()
            return try JSONResponse.make(.ok, LotPageBody(userId: userId, data: page.data.map { LotBody($0, nowMs: now) },
                                                          nextCursor: page.nextCursor))
        }
    }
}
