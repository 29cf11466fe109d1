import _CryptoExtras
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hummingbird

/// What bqemulator cannot show, in front of it. A test double, since Google's token service and
/// a slow BigQuery job cannot run here:
/// - `POST /token` is a service account's token endpoint: it checks the JWT's RS256 signature
///   with the account's public key, and its claims, before it hands out a token;
/// - everything under `/bigquery/v2` is forwarded to the real emulator, except that the first
///   `jobs.query` answer is held back as "not complete yet" (no rows), as BigQuery answers
///   when `timeoutMs` passes first. It records the `Authorization` header of every call.
final class BigQueryFrontDouble: @unchecked Sendable {
    let key: _RSA.Signing.PrivateKey
    let clientEmail = "segmenter-test@project.iam.gserviceaccount.com"
    private let emulator: String
    private let lock = NSLock()
    private var authorizations: [String] = []
    private var tokensIssued = 0
    private var heldBack = 0
    private var task: Task<Void, Error>?
    private(set) var port = 0

    init(emulator: String) throws {
        self.emulator = emulator
        key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
    }

    var endpoint: String { "http://127.0.0.1:\(port)" }
    var tokenURI: String { "\(endpoint)/token" }
    var seenAuthorizations: [String] { lock.withLock { authorizations } }
    var issued: Int { lock.withLock { tokensIssued } }
    var incompleteAnswers: Int { lock.withLock { heldBack } }

    /// A service-account key file as Google's console writes it (PKCS#8 PEM).
    func writeKeyFile(signingKey: _RSA.Signing.PrivateKey? = nil) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sa-\(UUID().uuidString).json").path
        let json: [String: String] = ["type": "service_account", "project_id": "segmenter-test", "private_key_id": "k1",
                                      "private_key": (signingKey ?? key).pkcs8PEMRepresentation, "client_email": clientEmail,
                                      "token_uri": tokenURI]
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        return path
    }

    func start() async throws {
        let router = Router()
        router.post("token") { request, _ in try await self.token(request) }
        router.post("bigquery/v2/projects/:project/queries") { request, _ in try await self.forward(request, holdBack: true) }
        router.get("bigquery/v2/projects/:project/queries/:job") { request, _ in try await self.forward(request, holdBack: false) }
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) })
        task = Task { try await app.run() }
        for await bound in stream {
            port = bound
            break
        }
    }

    func stop() { task?.cancel() }

    private func token(_ request: Request) async throws -> Response {
        let form = String(buffer: try await request.body.collect(upTo: 1 << 20))
        let fields = Dictionary(form.split(separator: "&").map { pair -> (String, String) in
            let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
            return (parts[0], parts.count > 1 ? parts[1] : "")
        }) { $1 }
        guard fields["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer", let jwt = fields["assertion"], valid(jwt) else {
            return Self.json(#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#, status: .badRequest)
        }
        let number = lock.withLock { tokensIssued += 1; return tokensIssued }
        return Self.json(#"{"access_token":"test-token-\#(number)","expires_in":3600,"token_type":"Bearer"}"#)
    }

    /// The signature checks against the account's public key, and the claims name this
    /// account, this endpoint and BigQuery, unexpired.
    private func valid(_ jwt: String) -> Bool {
        let parts = jwt.split(separator: ".").map(String.init)
        guard parts.count == 3, let signature = Self.base64URLDecode(parts[2]), let claimsData = Self.base64URLDecode(parts[1]),
              let claims = try? JSONSerialization.jsonObject(with: claimsData) as? [String: Any] else { return false }
        let signed = key.publicKey.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature),
                                                    for: Data((parts[0] + "." + parts[1]).utf8), padding: .insecurePKCS1v1_5)
        let now = Int(Date().timeIntervalSince1970)
        return signed && claims["iss"] as? String == clientEmail && claims["aud"] as? String == tokenURI
            && (claims["scope"] as? String)?.contains("bigquery") == true && ((claims["exp"] as? Int) ?? 0) > now
    }

    private func forward(_ request: Request, holdBack: Bool) async throws -> Response {
        lock.withLock { authorizations.append(request.headers[.authorization] ?? "") }
        var url = emulator + request.uri.path
        if let query = request.uri.query { url += "?" + query }
        var forwarded = URLRequest(url: URL(string: url)!)
        forwarded.httpMethod = request.method.rawValue
        if request.method == .post {
            forwarded.httpBody = Data(buffer: try await request.body.collect(upTo: 16 << 20))
            forwarded.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: forwarded)
        let status = HTTPResponse.Status(code: (response as? HTTPURLResponse)?.statusCode ?? 502)
        let first = holdBack && lock.withLock { heldBack += 1; return heldBack == 1 }
        guard first, var answer = try JSONSerialization.jsonObject(with: data) as? [String: Any], answer["errors"] == nil else {
            return Self.json(String(decoding: data, as: UTF8.self), status: status)
        }
        for field in ["rows", "schema", "pageToken", "totalRows"] { answer.removeValue(forKey: field) }
        answer["jobComplete"] = false
        return Self.json(String(decoding: try JSONSerialization.data(withJSONObject: answer), as: UTF8.self), status: status)
    }

    static func json(_ body: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func base64URLDecode(_ text: String) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}
