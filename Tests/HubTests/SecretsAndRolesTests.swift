import ArgusSupport
import Foundation
import Testing

@testable import ArgusStore
@testable import CommandRuntime
@testable import Hub
@testable import HubAPI
@testable import HubGateway

@Suite("Secrets, roles and capacity")
struct SecretsAndRolesTests {
    @Test func secretsAreRandomAndOnlyTheirHashVerifies() {
        let a = Secrets.generate(), b = Secrets.generate()
        #expect(a != b && a.count == 43)
        #expect(!a.contains("+") && !a.contains("/") && !a.contains("="))
        let h = Secrets.hash(a)
        #expect(h.hasPrefix("sha256:") && h.count == 7 + 64)
        #expect(Secrets.verify(a, against: h))
        #expect(!Secrets.verify(b, against: h))
        #expect(!Secrets.verify(a, against: h + "0"))
        #expect(!Secrets.verify(a, against: ""))
        #expect(Secrets.generate(prefix: "argus_").hasPrefix("argus_"))
    }

    @Test func knownSHA256Vector() {
        #expect(Secrets.hash("abc") == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func constantTimeEqualsComparesEveryByte() {
        #expect(Secrets.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!Secrets.constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!Secrets.constantTimeEquals([1, 2, 3], [1, 2]))
        #expect(!Secrets.constantTimeEquals([], [0]))
    }

    @Test func parsesAuthorizationHeaders() throws {
        let header = "Basic " + Data("box-1:s3cr:et".utf8).base64EncodedString()
        let c = try #require(Secrets.parseBasic(header))
        #expect(c.id == "box-1" && c.secret == "s3cr:et", "the secret may contain colons")
        #expect(Secrets.parseBasic("Basic !!!") == nil)
        #expect(Secrets.parseBasic("Bearer abc") == nil)
        #expect(Secrets.parseBasic("Basic " + Data("nocolon".utf8).base64EncodedString()) == nil)
        #expect(Secrets.parseBasic("Basic " + Data(":secret".utf8).base64EncodedString()) == nil)
        #expect(Secrets.parseBearer("Bearer  tok ") == "tok")
        #expect(Secrets.parseBearer("bearer tok") == "tok")
        #expect(Secrets.parseBearer("Basic tok") == nil)
        #expect(Secrets.parseBearer("Bearer ") == nil)
    }

    @Test func capacityAdmitsThenAnswers503ThenDrops() {
        let c = ConnectionCapacity(cap: 2, rejectBudget: 1)
        #expect(c.acquire() == .admit)
        #expect(c.acquire() == .admit)
        #expect(c.acquire() == .overCapacity)
        #expect(c.acquire() == .drop)
        c.release(); c.release()
        #expect(c.current == 2)
        #expect(c.acquire() == .overCapacity, "the slot goes to whoever counts next; 3 are open")
        c.release(); c.release()
        #expect(c.acquire() == .admit)
    }

    @Test func capIsDerivedFromTheDescriptorLimitWithHeadroom() {
        #expect(ConnectionCapacity.derivedCap(descriptorLimit: 20_000, reserved: 512, rejectBudget: 256) == 19_232)
        #expect(ConnectionCapacity.derivedCap(descriptorLimit: 100, reserved: 512, rejectBudget: 256) == 0)
        let limit = ConnectionCapacity.descriptorLimit()
        #expect(limit >= 1024)
    }
}
