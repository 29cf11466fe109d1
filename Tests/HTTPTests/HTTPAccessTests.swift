import Testing
@testable import HTTP
import ServiceConfig

/// The token is compared as a whole, with its scheme (the config that sets it: ConfigTests).
@Suite struct HTTPAccessTokenTests {
    @Test func onlyTheWholeTokenWithItsSchemeIsAccepted() throws {
        var access = HTTPAccess()
        access.token = "0123456789abcdef0123"
        #expect(access.accepts("Bearer 0123456789abcdef0123") && access.accepts("bearer 0123456789abcdef0123"))
        #expect(!access.accepts("Bearer 0123456789abcdef012") && !access.accepts("0123456789abcdef0123") && !access.accepts(nil))
    }
}

/// Per-user data is recognised however its path is spelled (issue 25, item 1).
@Suite struct HTTPAccessPathTests {
    @Test(arguments: ["/api/users/u1", "//api/users/u1", "/api//users/u1", "/./api/users/u1", "/api/./users/u1/explain",
                      "/api/users/u1/", "/api%2Fusers/u1", "/api%2fusers/u1", "//api/export/features", "/API/Users/u1", "/api/export"])
    func perUserPathsAreRecognised(path: String) {
        #expect(HTTPAccess.readsUserData(path))
    }

    @Test(arguments: ["/api/segments", "/api/alerts", "/", "/healthz", "/apiusers/u1", "/api/user", "/metrics", "/api/history"])
    func otherPathsAreNot(path: String) {
        #expect(!HTTPAccess.readsUserData(path))
    }
}

/// Numbers a request or a flag brings are bounded before any arithmetic (issue 25, item 3).
@Suite struct ExportWindowTests {
    @Test(arguments: ["9223372036854775807", "10000000000000", "0", "-1", "3651", "7,x", "", "7,,30",
                      (1...17).map(String.init).joined(separator: ",")])
    func badWindowsAreRefusedWithAReason(text: String) {
        guard case let .failure(problem) = FeatureExport.windows(query: text) else {
            Issue.record("accepted windows=\(text)")
            return
        }
        #expect(!problem.description.isEmpty)
    }

    @Test func goodWindowsAreRead() throws {
        #expect(try FeatureExport.windows(query: "1,7,3650").get() == [1, 7, 3650])
        #expect(try FeatureExport.windows(query: nil).get() == FeatureExport.defaultWindows)
        #expect(FeatureExport.problem(with: [10_000_000_000_000]) == "a window must be 1...3650 days, not 10000000000000")
    }
}
