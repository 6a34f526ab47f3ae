import CreditsCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore

/// JSON in and out, with API.md's error format for every way a body can be wrong.
enum JSONResponse {
    static func make(_ status: HTTPResponse.Status, _ value: some Encodable, replayed: Bool = false) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if replayed { headers[.idempotentReplayed] = "true" }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func error(_ error: CreditsError, replayed: Bool = false) -> Response {
        let status = HTTPResponse.Status(code: error.code.httpStatus)
        // Encoding a struct of strings and integers cannot fail.
        return (try? make(status, ErrorBody(error), replayed: replayed)) ?? Response(status: .internalServerError)
    }

    /// Reads at most `Limits.requestBodyBytesMax` bytes and decodes them; every failure is a
    /// `CreditsError` naming the field.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: Limits.requestBodyBytesMax)
        } catch is NIOTooManyBytesError {
            throw CreditsError(.payloadTooLarge, "the request body is larger than \(Limits.requestBodyBytesMax) bytes")
        }
        if buffer.readableBytes == 0 { throw CreditsError.validation("body", "a JSON object is required") }
        return try decode(type, data: Data(buffer.readableBytesView))
    }

    /// Decodes a body already read; every failure is a `CreditsError` naming the field.
    static func decode<T: Decodable>(_ type: T.Type, data: Data) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            if case .dataCorrupted(let ctx) = error, ctx.codingPath.isEmpty, let field = culprit(T.self, in: data) {
                throw CreditsError.validation(field, "has a value of the wrong type or out of range")
            }
            throw CreditsError(decoding: error)
        }
    }

    /// Foundation's decoder reports a number it cannot hold (1.5 or 1e30 for an Int64) as "not
    /// valid JSON" with no path. When the body is valid JSON, find the number: the first whose
    /// replacement by 1 makes that error go. (Until 2026-12-05 this removed one field at a time,
    /// and named the first required field decoded before the culprit: `fileType` for an upload's
    /// `sizeBytes` of 1.5.) A number in a field that wants another type is passed over: 1 is no
    /// better there.
    private static func culprit<T: Decodable>(_ type: T.Type, in data: Data) -> String? {
        guard let root = try? JSONSerialization.jsonObject(with: data) else { return nil }
        for (path, replaced) in numbers(in: root, path: "") {
            guard let edited = try? JSONSerialization.data(withJSONObject: replaced) else { continue }
            do {
                _ = try JSONDecoder().decode(T.self, from: edited)
                return path
            } catch DecodingError.dataCorrupted(let ctx) where ctx.codingPath.isEmpty {
                continue
            } catch let error as DecodingError where CreditsError(decoding: error).field == path {
                continue
            } catch {
                return path
            }
        }
        return nil
    }

    /// Every number in a JSON value, in order, with its path as `CreditsError` names fields
    /// (`sizeBytes`, `data.amount`, `items[1]`) and the whole value with that number made 1.
    private static func numbers(in value: Any, path: String) -> [(path: String, replaced: Any)] {
        switch value {
        case let object as [String: Any]:
            object.keys.sorted().flatMap { key in
                numbers(in: object[key]!, path: path.isEmpty ? key : "\(path).\(key)").map { found in
                    var copy = object
                    copy[key] = found.replaced
                    return (found.path, copy as Any)
                }
            }
        case let array as [Any]:
            array.indices.flatMap { i in
                numbers(in: array[i], path: "\(path)[\(i)]").map { found in
                    var copy = array
                    copy[i] = found.replaced
                    return (found.path, copy as Any)
                }
            }
        case is NSNumber:
            [(path, 1)]
        default:
            []
        }
    }
}

/// `{"error": CODE, "message": ..., "field"?: ..., "required"?: ...}`
struct ErrorBody: Encodable {
    var error: String
    var message: String
    var field: String?
    var required: Int64?
    var available: Int64?
    var suggestedPackage: String?
    var owed: Int64?

    init(_ e: CreditsError) {
        owed = e.owed
        error = e.code.rawValue
        message = e.message
        field = e.field
        required = e.required
        available = e.available
        suggestedPackage = e.suggestedPackage
    }
}

extension HTTPField.Name {
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    static let idempotentReplayed = HTTPField.Name("Idempotent-Replayed")!
}

/// The HTTP form of a ledger outcome: 201 with the receipt, or the remembered rejection; a replay
/// is marked `Idempotent-Replayed: true`.
enum LedgerResponse {
    static func make(_ result: OperationResult) throws -> Response {
        switch result.outcome {
        // A purchase waiting for the provider's confirmation is accepted, not yet done.
        case .purchased(let receipt): try JSONResponse.make(receipt.status == "pending" ? .accepted : .created, receipt, replayed: result.replayed)
        case .spent(let receipt): try JSONResponse.make(.created, receipt, replayed: result.replayed)
        case .adjusted(let receipt): try JSONResponse.make(.created, receipt, replayed: result.replayed)
        case .queued(let receipt): try JSONResponse.make(.accepted, receipt, replayed: result.replayed)
        case .settled(let receipt): try JSONResponse.make(.created, receipt, replayed: result.replayed)
        case .milestoneGranted(let receipt): try JSONResponse.make(.created, receipt, replayed: result.replayed)
        case .sponsoredUpload(let receipt): try JSONResponse.make(.created, receipt, replayed: result.replayed)
        case .paymentEvent(let receipt): try JSONResponse.make(.ok, receipt, replayed: result.replayed)
        case .expired(let receipt): try JSONResponse.make(.ok, receipt, replayed: result.replayed)
        case .rejected(let error): JSONResponse.error(error, replayed: result.replayed)
        }
    }
}
