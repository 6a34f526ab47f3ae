import CreditsCore
import CreditsStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore

/// `POST /api/users` (register or update a creator) and `GET /api/credits/sponsorship`.
struct UsersController {
    let manager: CreditManager
    let rules: SponsorshipRules
    let clock: WallClock

    /// `walletAddress`: absent keeps the stored one, null clears it.
    struct UserBody: Decodable {
        var userId: String
        var walletAddress: String??
        var signedUpAt: String?

        enum CodingKeys: String, CodingKey { case userId, walletAddress, signedUpAt }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            userId = try c.decode(String.self, forKey: .userId)
            if c.contains(.walletAddress) {
                walletAddress = .some(try c.decodeNil(forKey: .walletAddress) ? nil : try c.decode(String.self, forKey: .walletAddress))
            } else {
                walletAddress = nil
            }
            signedUpAt = try c.decodeIfPresent(String.self, forKey: .signedUpAt)
        }
    }

    struct UserView: Encodable {
        var userId: String
        var walletAddress: String?
        var signedUpAt: String
        var sponsoredUploadsUsed: Int

        init(_ p: UserProfile) {
            userId = p.userId
            walletAddress = p.walletAddress
            signedUpAt = Timestamp.iso8601(ms: p.signedUpAtMs)
            sponsoredUploadsUsed = p.sponsoredUploadsUsed
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(userId, forKey: .userId)
            try c.encode(walletAddress, forKey: .walletAddress)  // null when none
            try c.encode(signedUpAt, forKey: .signedUpAt)
            try c.encode(sponsoredUploadsUsed, forKey: .sponsoredUploadsUsed)
        }

        enum CodingKeys: String, CodingKey { case userId, walletAddress, signedUpAt, sponsoredUploadsUsed }
    }

    func addRoutes(users: RouterGroup<BasicRequestContext>, credits: RouterGroup<BasicRequestContext>) {
        users.post { request, _ in
            let body = try await JSONResponse.decode(UserBody.self, from: request)
            try Identifier.check(body.userId, field: "userId")
            if case .some(.some(let wallet)) = body.walletAddress { try Identifier.check(wallet, field: "walletAddress") }
            var signedUpMs: Int64?
            if let text = body.signedUpAt {
                guard let date = try? Date(text, strategy: .iso8601) else {
                    throw CreditsError.validation("signedUpAt", "must be an ISO 8601 time such as 2026-11-01T12:00:00Z")
                }
                let ms = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
                guard ms >= 0, ms <= clock.nowMs() + 86_400_000 else {
                    throw CreditsError.validation("signedUpAt", "must not be before 1970 or in the future")
                }
                signedUpMs = ms
            }
            let profile = try await manager.store.upsertUser(userId: body.userId, walletAddress: body.walletAddress, signedUpAtMs: signedUpMs)
            return try JSONResponse.make(.ok, UserView(profile))
        }
        credits.get("sponsorship") { request, _ in
            let userId = try request.uri.requiredQuery("userId")
            let profile = try await manager.store.userProfile(userId: userId)
            return try JSONResponse.make(.ok, rules.eligibility(profile, nowMs: clock.nowMs()))
        }
    }
}
