import CreditsCore
import CreditsStore
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore

/// Turns every failure into API.md's error format. Outermost, so it sees routing errors too.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as CreditsError {
            return JSONResponse.error(error)
        } catch is NIOTooManyBytesError {
            return JSONResponse.error(CreditsError(.payloadTooLarge, "the request body is too large"))
        } catch let error as HTTPError {
            switch error.status.code {
            case 404: return JSONResponse.error(CreditsError(.notFound, "no such route: \(request.method) \(request.uri.path)"))
            case 413: return JSONResponse.error(CreditsError(.payloadTooLarge, "the request body is too large"))
            case 400..<500: return JSONResponse.error(CreditsError(.validationError, error.body ?? "bad request", field: "body"))
            default:
                context.logger.error("request failed", metadata: ["error": "\(error)"])
                return JSONResponse.error(CreditsError(.internal, "internal error"))
            }
        } catch {
            if let reason = DatabaseOutage.reason(error) {
                // Not a defect: the client is told to retry, the operator why.
                context.logger.warning("database unavailable", metadata: ["reason": "\(reason)"])
                return JSONResponse.error(CreditsError(
                    .unavailable, "the database is unavailable; retry shortly (an operation sent again under the same id applies once)"))
            }
            // Logged for operators; the client learns nothing of the internals.
            context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
            return JSONResponse.error(CreditsError(.internal, "internal error"))
        }
    }
}

/// Bearer keys (API.md "Authentication"): the service key for `/api/*` but admin routes, the
/// admin key for everything. `/healthz` and `/metrics` are open; webhooks authenticate by signature.
struct AuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let serviceKeyDigest: [UInt8]
    let adminKeyDigest: [UInt8]

    init(serviceKey: String, adminKey: String) {
        precondition(!serviceKey.isEmpty && !adminKey.isEmpty, "keys are configured before the router is built")
        serviceKeyDigest = Array(SHA256.hash(data: Data(serviceKey.utf8)))
        adminKeyDigest = Array(SHA256.hash(data: Data(adminKey.utf8)))
    }

    enum Role { case none, service, admin }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        let adminOnly = path == "/admin" || path.hasPrefix("/admin/") || path.hasPrefix("/api/admin/") || path == "/api/admin"
        let open = !path.hasPrefix("/api/") && !adminOnly || path.hasPrefix("/api/webhooks/")
        if open { return try await next(request, context) }
        switch role(of: request) {
        case .none where path == "/admin" || path.hasPrefix("/admin/"):
            // Browsers ask for the admin key (any user name) and keep it for the session.
            var response = JSONResponse.error(CreditsError(.unauthorized, "sign in with the admin key as the password"))
            response.headers[.wwwAuthenticate] = "Basic realm=\"StreamVault Credits admin\", charset=\"UTF-8\""
            return response
        case .none:
            throw CreditsError(.unauthorized, "send 'Authorization: Bearer <key>' with a valid key")
        case .service where adminOnly:
            throw CreditsError(.forbidden, "this route needs the admin key")
        case .service, .admin:
            return try await next(request, context)
        }
    }

    /// Compares digests in constant time, so timing tells nothing about a key's prefix. Takes
    /// `Bearer <key>`, or HTTP Basic with the key as the password (for the dashboard in a browser).
    func role(of request: Request) -> Role {
        guard let header = request.headers[.authorization] else { return .none }
        let key: Substring
        if header.hasPrefix("Bearer ") {
            key = header.dropFirst(7)
        } else if header.hasPrefix("Basic "), let decoded = Data(base64Encoded: String(header.dropFirst(6))),
                  let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":") {
            key = text[text.index(after: colon)...]
        } else {
            return .none
        }
        let digest = Array(SHA256.hash(data: Data(key.utf8)))
        if ConstantTime.equal(digest, adminKeyDigest) { return .admin }
        if ConstantTime.equal(digest, serviceKeyDigest) { return .service }
        return .none
    }
}

/// Byte comparison whose time does not depend on where the bytes differ (keys, signatures).
enum ConstantTime {
    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}
