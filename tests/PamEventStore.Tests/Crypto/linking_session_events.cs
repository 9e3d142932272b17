using System.Security.Cryptography;
using PamEventStore.Crypto;
using PamEventStore.Sessions;

namespace PamEventStore.Tests.Crypto;

public sealed class linking_session_events
{
    private static readonly byte[] OrgKey = RandomNumberGenerator.GetBytes(32);
    private static readonly SessionChain Chain = new(OrgKey);
    private static readonly Guid Session = Guid.CreateVersion7();
    private static readonly byte[] Previous = RandomNumberGenerator.GetBytes(32);
    private static readonly GapDetected Gap = new(100, 200, new DateTimeOffset(2026, 12, 5, 9, 0, 0, TimeSpan.FromHours(1)));

    private static byte[] Link(string org = "acme", Guid? session = null, long version = 4, byte[]? previous = null, SessionEvent? e = null) =>
        Chain.Link(org, session ?? Session, version, previous ?? Previous, e ?? Gap);

    [Fact]
    public void the_same_event_at_the_same_place_links_the_same()
    {
        Link().ShouldBe(Link());
        Link().Length.ShouldBe(SessionChain.LinkSize);
    }

    [Fact]
    public void a_link_binds_the_org_the_session_the_version_the_link_before_and_every_field()
    {
        var links = new[]
        {
            Link(),
            Link(org: "acme2"),
            Link(session: Guid.CreateVersion7()),
            Link(version: 5),
            Link(previous: RandomNumberGenerator.GetBytes(32)),
            Link(e: Gap with { To = 201 }),
            Link(e: Gap with { At = Gap.At.ToOffset(TimeSpan.Zero) }),
            Link(e: new SessionActivated(Gap.At)),
            new SessionChain(RandomNumberGenerator.GetBytes(32)).Link("acme", Session, 4, Previous, Gap),
        };

        links.Select(Convert.ToBase64String).Distinct().Count().ShouldBe(links.Length);
    }

    [Fact]
    public void an_event_s_own_link_is_not_part_of_what_it_links()
    {
        Link(e: Gap with { Link = RandomNumberGenerator.GetBytes(32) }).ShouldBe(Link());
    }

    [Fact]
    public void a_batch_s_ciphertext_is_covered_by_its_fingerprint_not_by_its_link()
    {
        var batch = new BatchUploaded(0, 0, 100, 0, 1, Gap.At, Gap.At, [1, 2], [1, 2], 10, "dk-1", new Actor("gateway", "gateway:gw-1", "gw-1", null), Gap.At);

        Link(e: batch with { Ciphertext = [9, 9, 9] }).ShouldBe(Link(e: batch));
        Link(e: batch with { ContentFingerprint = [1, 3] }).ShouldNotBe(Link(e: batch));
    }

    [Fact]
    public void extending_links_each_event_onto_the_one_before()
    {
        SessionEvent[] events = [new SessionActivated(Gap.At), Gap, new SessionEnded(Gap.At, new Actor("user", "alice", null, null), null)];

        var linked = Chain.Extend("acme", Session, 3, Previous, events);

        linked.Length.ShouldBe(3);
        Chain.Verifies("acme", Session, 4, Previous, linked[0]).ShouldBeTrue();
        Chain.Verifies("acme", Session, 5, linked[0].Link, linked[1]).ShouldBeTrue();
        Chain.Verifies("acme", Session, 6, linked[1].Link, linked[2]).ShouldBeTrue();
        Chain.Verifies("acme", Session, 6, linked[0].Link, linked[2]).ShouldBeFalse();
        Chain.Verifies("acme", Session, 4, Previous, events[0]).ShouldBeFalse();
    }
}
