using System.Reflection;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using PamEventStore.Crypto;
using PamEventStore.Tests.Infrastructure;

namespace PamEventStore.Tests.Crypto;

/// <summary>
/// An org's first uploads, and the uploads that arrive while its key ring is due for a reload, come
/// many at once: the node loads (or creates) the ring once for them all.
/// </summary>
[Collection(PamStoreCollection.Name)]
public sealed class when_many_uploads_need_an_orgs_keys_at_once(PamStoreHost store)
{
    private readonly string _orgId = store.NewOrg().Id;
    private readonly TestClock _clock = new();

    [Fact]
    public async Task a_new_orgs_ring_is_created_once_and_every_upload_seals_with_its_key()
    {
        var (keys, calls) = CountingKeys();

        var sealings = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => Task.Run(() => keys.SealingAsync(_orgId, CancellationToken.None).AsTask())));

        sealings.Select(s => s.Active.Id).Distinct().ShouldHaveSingleItem();
        calls.Count(nameof(IDocumentStore.LightweightSession)).ShouldBe(1);
        calls.Count(nameof(IDocumentStore.QuerySession)).ShouldBe(1);
    }

    [Fact]
    public async Task a_ring_due_for_a_reload_is_read_once_for_the_uploads_waiting_on_it()
    {
        var (keys, calls) = CountingKeys();
        var first = await keys.SealingAsync(_orgId, CancellationToken.None);
        _clock.Advance(OrgDataKeys.ActiveKeyLifetime + TimeSpan.FromSeconds(1));

        var sealings = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => Task.Run(() => keys.SealingAsync(_orgId, CancellationToken.None).AsTask())));

        sealings.ShouldAllBe(s => s.Active.Id == first.Active.Id);
        calls.Count(nameof(IDocumentStore.QuerySession)).ShouldBe(2);
    }

    [Fact]
    public async Task an_upload_whose_caller_is_gone_gets_no_keys_and_leaves_them_to_the_next()
    {
        var (keys, _) = CountingKeys();
        using var gone = new CancellationTokenSource();
        await gone.CancelAsync();

        await Should.ThrowAsync<OperationCanceledException>(keys.SealingAsync(_orgId, gone.Token).AsTask());

        (await keys.SealingAsync(_orgId, CancellationToken.None)).OrgId.ShouldBe(_orgId);
    }

    /// <summary>The node's key handling on its own clock, over the real store, counting the sessions it opens.</summary>
    private (OrgDataKeys Keys, StoreCalls Calls) CountingKeys()
    {
        var calls = new StoreCalls();
        var counting = DispatchProxy.Create<IDocumentStore, CountingStore>();
        ((CountingStore)(object)counting).Init(store.Host.Services.GetRequiredService<IDocumentStore>(), calls);
        return (new OrgDataKeys(counting, store.Host.Services.GetRequiredService<MasterKeys>(), _clock), calls);
    }

    public sealed class StoreCalls
    {
        private readonly Dictionary<string, int> _calls = [];

        public void Add(string method)
        {
            lock (_calls) _calls[method] = _calls.GetValueOrDefault(method) + 1;
        }

        public int Count(string method)
        {
            lock (_calls) return _calls.GetValueOrDefault(method);
        }
    }

    /// <summary>The document store, as it is, with a count of each of its methods called.</summary>
    public class CountingStore : DispatchProxy
    {
        private IDocumentStore _inner = null!;
        private StoreCalls _calls = null!;

        internal void Init(IDocumentStore inner, StoreCalls calls) => (_inner, _calls) = (inner, calls);

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            _calls.Add(targetMethod!.Name);
            try
            {
                return targetMethod.Invoke(_inner, args);
            }
            catch (TargetInvocationException e) when (e.InnerException is not null)
            {
                throw e.InnerException;
            }
        }
    }
}
