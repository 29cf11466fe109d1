import _CryptoExtras
import AsyncHTTPClient
import Foundation
import NIOCore

/// OAuth access tokens for a service account (Google's "JWT bearer" flow): a JWT signed with
/// the key file's RS256 key is exchanged at its `token_uri`. A token is reused until five
/// minutes before it expires. Neither the key nor the token appears in any error or log.
actor ServiceAccountToken {
    struct KeyFile: Decodable {
        let client_email: String
        let private_key: String
        let private_key_id: String?
        let token_uri: String
    }

    static let scope = "https://www.googleapis.com/auth/bigquery.readonly"
    private let key: KeyFile
    private let signingKey: _RSA.Signing.PrivateKey
    private let http: HTTPClient
    private var current: (token: String, expires: Date)?

    init(keyFile path: String, http: HTTPClient) throws {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw WarehouseError(step: "credentials", message: "cannot read the key file \(path)")
        }
        do { key = try JSONDecoder().decode(KeyFile.self, from: data) } catch {
            throw WarehouseError(step: "credentials", message: "\(path) is not a service-account key (needs client_email, private_key, token_uri)")
        }
        do { signingKey = try _RSA.Signing.PrivateKey(pemRepresentation: key.private_key) } catch {
            throw WarehouseError(step: "credentials", message: "the private_key of \(path) is not an RSA key in PEM")
        }
        self.http = http
    }

    /// A token valid for at least five more minutes.
    func token(now: Date) async throws -> String {
        if let current, current.expires.timeIntervalSince(now) > 300 { return current.token }
        let assertion = try jwt(now: now)
        var request = HTTPClientRequest(url: key.token_uri)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.body = .bytes(ByteBuffer(string: "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=\(assertion)"))
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await http.execute(request, timeout: .seconds(30))
            body = try await response.body.collect(upTo: 1 << 20)
        } catch {
            throw WarehouseError(step: "credentials", message: "token exchange at \(key.token_uri) failed: \(error)")
        }
        struct Answer: Decodable {
            let access_token: String?
            let expires_in: Int?
            let error: String?
            let error_description: String?
        }
        let answer = try? JSONDecoder().decode(Answer.self, from: Data(buffer: body))
        guard response.status == .ok, let token = answer?.access_token else {
            let reason = [answer?.error, answer?.error_description].compactMap { $0 }.joined(separator: ": ")
            throw WarehouseError(step: "credentials", message: "token exchange at \(key.token_uri) refused (HTTP \(response.status.code)\(reason.isEmpty ? "" : ", \(reason)"))")
        }
        current = (token, now.addingTimeInterval(TimeInterval(answer?.expires_in ?? 3600)))
        return token
    }

    /// `header.claims.signature`, each base64url without padding.
    func jwt(now: Date) throws -> String {
        var header = ["alg": "RS256", "typ": "JWT"]
        if let id = key.private_key_id { header["kid"] = id }
        let issued = Int(now.timeIntervalSince1970)
        let claims: [String: Any] = ["iss": key.client_email, "scope": Self.scope, "aud": key.token_uri, "iat": issued, "exp": issued + 3600]
        let signingInput = Self.base64URL(try JSONSerialization.data(withJSONObject: header, options: .sortedKeys)) + "."
            + Self.base64URL(try JSONSerialization.data(withJSONObject: claims, options: .sortedKeys))
        let signature = try signingKey.signature(for: Data(signingInput.utf8), padding: .insecurePKCS1v1_5)
        return signingInput + "." + Self.base64URL(signature.rawRepresentation)
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
