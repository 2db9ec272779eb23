# ruff: noqa: E501  (HTML content: long lines are kept as written)
"""Article content for the Japan Talk example site.

The bodies are plain HTML fragments. ``AD_SLOT`` marks where the page template puts the
in-article AdSense unit (the GPT slot lives in the sidebar); ``kyoto-autumn`` is deliberately
long (the whole page is about 30 KB) so it can serve as a benchmark document.
"""

from __future__ import annotations

from dataclasses import dataclass

AD_SLOT = "<!-- ad-slot -->"


@dataclass(frozen=True)
class Article:
    slug: str
    title: str
    date: str  # ISO date
    summary: str
    label: str  # big word on the card / hero banner
    caption: str  # small line under it
    hue: int  # banner colour (HSL hue)
    tags: tuple[str, ...]
    body: str
    has_video: bool = False


KYOTO_AUTUMN = """
<p class="lead">Every November Kyoto turns red. The maples in the temple gardens go from green
to gold to a deep, almost glowing crimson, and for about three weeks the whole city seems to
exist for the leaves. The Japanese call this <em>momiji-gari</em> &mdash; &ldquo;maple
hunting&rdquo; &mdash; and Kyoto is where the hunt is most serious.</p>

<p>This guide is the one we wish we had on our first autumn trip: when to go, where to go,
how to avoid standing in a queue of ten thousand people on a wooden bridge, and what to eat
between temples. It is long, because Kyoto in autumn rewards a bit of planning.</p>

<nav class="toc" aria-label="Contents">
<h2>Contents</h2>
<ol>
<li><a href="#when">When the leaves turn</a></li>
<li><a href="#east">Higashiyama: the eastern hills</a></li>
<li><a href="#south">Tofuku-ji and the south</a></li>
<li><a href="#west">Arashiyama and the west</a></li>
<li><a href="#north">Ohara, Kurama and the north</a></li>
<li><a href="#quiet">Quieter gardens</a></li>
<li><a href="#night">Night illuminations</a></li>
<li><a href="#table">Quick reference table</a></li>
<li><a href="#itinerary">A three-day itinerary</a></li>
<li><a href="#food">Autumn food</a></li>
<li><a href="#rain">If it rains</a></li>
<li><a href="#tips">Crowds, transport and photography</a></li>
<li><a href="#faq">Frequently asked questions</a></li>
</ol>
</nav>

<h2 id="when">When the leaves turn</h2>

<p>Autumn colour in Japan moves in the opposite direction to the cherry blossoms: it starts in
Hokkaido and the high mountains in late September and creeps south and downhill through
October and November. Kyoto's city temples sit in a basin surrounded by hills on three sides,
so the colour arrives late here, usually in the second half of November, and lingers in
shaded gardens into the first week of December.</p>

<p>A rough rule of thumb that has served us well over many seasons:</p>

<ul>
<li><strong>Early November:</strong> the mountains north of the city (Kurama, Kibune, Takao)
start to colour. City gardens are still mostly green with a few eager trees.</li>
<li><strong>Mid November:</strong> Ohara and the northern temples peak; the city is turning.
Ginkgo trees on the streets go bright yellow.</li>
<li><strong>Around 20&ndash;30 November:</strong> peak in the city centre, Higashiyama,
Tofuku-ji and Arashiyama. This is when everyone comes.</li>
<li><strong>Early December:</strong> leaves start to fall. Moss gardens carpeted in red
leaves are, to our eyes, even more beautiful than the trees at peak, and the crowds are
thinner.</li>
</ul>

<p>Every year is different. A warm October delays things by a week or more, and a single
stormy night can strip the most exposed trees. Japanese weather services and railway
companies publish foliage forecasts (<em>k&#333;y&#333; zensen</em>) from September onwards,
and many temples post daily photos on their own websites once the season starts. Book your
accommodation early, keep your plans loose, and check the reports in the week before you go.</p>

<aside class="note">
<p><strong>Tip:</strong> If you can only come once, aim for the last week of November. If you
hate crowds more than you love perfect timing, come in the first days of December and spend
your time in gardens where fallen leaves are part of the show.</p>
</aside>

<h2 id="east">Higashiyama: the eastern hills</h2>

<p>The eastern side of the city, where the hills come down to meet the old streets, has the
densest collection of famous autumn spots. You can walk most of it in a long day, following the
Philosopher's Path and the lanes below it.</p>

<h3>Eikan-d&#333; (Zenrin-ji)</h3>

<p>Eikan-d&#333; has been called &ldquo;the temple of maples&rdquo; for centuries, and it
earns the name. Some three thousand trees fill a hillside of halls linked by covered
walkways and steep stairs, climbing up to a small pagoda with a view over the whole city.
The pond at the bottom of the garden doubles every tree in its reflection. It is also one of
the most crowded places in Kyoto at peak season, and the entry fee is higher during the
special autumn opening. Go at opening time or come back for the evening illumination.</p>

<h3>Nanzen-ji</h3>

<p>A short walk south of Eikan-d&#333;, Nanzen-ji is a huge Zen temple complex whose grounds
are free to wander. The massive Sanmon gate framed by red maples is one of the classic Kyoto
autumn images, and you can pay to climb it for a view over the treetops. Do not miss the
brick aqueduct from the Meiji era that runs through the grounds; its arches under autumn
leaves look like nothing else in the city. The sub-temples Tenju-an and Nanzen-in have quiet
gardens that are worth their small entry fees.</p>

<h3>Shinnyo-d&#333; and Yoshida</h3>

<p>If you want a famous view without famous queues, Shinnyo-d&#333; is our favourite secret
that is not really a secret. It sits in a quiet residential area on a low hill, with a
three-storey pagoda surrounded by maples. Locals come here with folding chairs and sketchbooks.
The approach from Kyoto University through the Yoshida hills is a lovely walk in itself.</p>

<h3>Kiyomizu-dera</h3>

<p>Kiyomizu-dera's wooden stage, built out over a steep valley on a lattice of pillars, looks
over a sea of maples in autumn. It is spectacular and it is packed, especially on the
narrow shopping streets of Sannenzaka and Ninenzaka that lead up to it. The evening
illumination, when a blue searchlight sweeps the sky above the temple, is worth the wait.
Arrive as the gates open in the morning and walk down through the old streets before the
shops have opened, when they are almost empty.</p>

<h3>Sh&#333;ren-in and Chion-in</h3>

<p>Between Maruyama Park and the Heian Shrine, Sh&#333;ren-in is a calmer temple with a
strolling garden, giant camphor trees at the gate and an evening illumination that uses
soft blue lights in the bamboo and moss. It is one of the best places to sit on a veranda
and simply look. Chion-in next door has one of the largest temple gates in Japan.</p>

<!-- ad-slot -->

<h2 id="south">Tofuku-ji and the south</h2>

<h3>Tofuku-ji</h3>

<p>If Kyoto has one postcard autumn view, it is the view from Ts&#363;ten-ky&#333;, the covered
wooden bridge at Tofuku-ji, looking down into a ravine completely filled with maples. Standing
on the bridge, you look across a valley where the leaves form an unbroken canopy of red,
orange and yellow. It is so popular that in peak season photography from the bridge itself has
been restricted in recent years so that people keep moving. The crowds are intense: on a
late-November weekend you can queue for a long time just to enter.</p>

<p>Our advice is simple: be at the gate before it opens on a weekday. Walk straight to the
bridge, then go back to the quieter parts of the complex. Tofuku-ji's H&#333;j&#333; gardens,
designed in the twentieth century by Shigemori Mirei, are a modern take on Zen gardens with a
checkerboard of moss and stone. Most visitors never see them, which is a shame.</p>

<h3>Fushimi and Daigo-ji</h3>

<p>Fushimi Inari is not really an autumn spot, but it is on the way south and the thousands of
vermilion gates look wonderful in low November light. Much better for leaves is Daigo-ji, a
vast World Heritage temple in the southeastern hills. The small Bent&#333;-d&#333; hall
standing over a pond with a red bridge is one of the most photographed scenes of the season,
and the grounds are big enough that the crowds spread out. Daigo-ji is on the Tozai subway
line, so it is easy to reach.</p>

<h2 id="west">Arashiyama and the west</h2>

<p>Arashiyama, on the western edge of the city, is where the mountains come right down to the
river. The Togetsuky&#333; bridge with the hillside behind it changes colour week by week
through November. The bamboo grove is busy all year round, but autumn brings crowds on a
different scale; go early.</p>

<h3>Tenry&#363;-ji and H&#333;gon-in</h3>

<p>Tenry&#363;-ji's garden uses the mountains behind it as borrowed scenery, so when the hills
colour, the whole garden does too. Its sub-temple H&#333;gon-in opens only in spring and
autumn, and its rock and moss garden is one of our favourites in Kyoto: it incorporates a
huge natural boulder called the Lion's Roar Rock, with maples arching over the path.</p>

<h3>J&#333;jakk&#333;-ji, Nison-in and the Sagano temples</h3>

<p>North of the bamboo grove, a lane of small temples runs along the foot of Mount Ogura. The
crowds thin out rapidly the further you walk. J&#333;jakk&#333;-ji climbs a mossy hillside
with a small pagoda at the top; Nison-in has a long, straight approach lined with maples
called the &ldquo;Maple Riding Ground&rdquo;. At the end of the lane, Adashino Nenbutsu-ji,
with its thousands of small stone statues, is quiet and a little haunting in late autumn.</p>

<h3>Sagano by train and boat</h3>

<p>The Sagano Romantic Train is a sightseeing train running along the Hozu gorge between
Arashiyama and Kameoka. In autumn, its open-air carriage is one of the hardest tickets in
Kyoto to get, so reserve as soon as bookings open. Many people ride the train up and return
on a traditional flat-bottomed boat down the river, a two-hour trip through the gorge with
the boatmen steering between rocks.</p>

<h2 id="north">Ohara, Kurama and the north</h2>

<p>The northern hills colour a week or two before the city and make a good first day of a trip
when the centre is still green.</p>

<h3>Ohara</h3>

<p>Ohara is a farming village about an hour north of central Kyoto by bus. Sanzen-in, the main
temple, has a moss garden with small stone figures of child monks and a hall surrounded by
cedars and maples. Nearby H&#333;sen-in is famous for its &ldquo;picture frame&rdquo; garden:
you sit on tatami, drink matcha, and look out through the open screens at a 700-year-old pine.
The village also produces pickles, and the lanes between the temples are lined with shops
selling <em>shibazuke</em>, the purple pickled cucumber and eggplant dyed with red shiso.</p>

<h3>Kurama and Kibune</h3>

<p>A small train from Demachiyanagi, the Eizan line, climbs into the mountains through a
famous &ldquo;maple tunnel&rdquo; that is illuminated at night in autumn; the train slows down
so that passengers can enjoy it. At the end of the line, you can hike over the mountain from
Kurama-dera to the shrine village of Kibune in about ninety minutes, through cedar forest and
over tree roots. Kibune has restaurants built on platforms over the river, which in autumn
serve hot pots instead of summer's cold noodles.</p>

<h3>Rurik&#333;-in</h3>

<p>Rurik&#333;-in, in the Yase area at the foot of Mount Hiei, has become famous for a single
view: maples reflected on the polished black surface of a lacquered writing desk on the
second floor. The temple opens to the public only for special seasons and now often requires
advance reservations. Photographs of the reflection are everywhere online, but they do not
prepare you for how quiet the room is.</p>

<h2 id="quiet">Quieter gardens</h2>

<p>The famous places are famous for good reasons, but some of our happiest hours in Kyoto have
been spent in small temples with a dozen other visitors. These are all well known to locals and
none is really hidden; they are simply a little out of the way, or small enough that tour groups
pass them by.</p>

<h3>H&#333;nen-in</h3>

<p>Just off the Philosopher's Path, a few minutes' walk up a lane, H&#333;nen-in has a thatched
gate framed by maples and two raised mounds of white sand, raked into new patterns every season,
on either side of the approach. The grounds are free and open early. In late November the mossy
steps are covered in red leaves, and it is a good place to start a morning walk along the path
before the crowds arrive.</p>

<h3>K&#333;t&#333;-in at Daitoku-ji</h3>

<p>Daitoku-ji in the north of the city is a walled complex of more than twenty sub-temples,
several of which open to the public. K&#333;t&#333;-in is approached along a long, narrow
stone path between bamboo fences under an arch of maples, one of the loveliest entrances in
Kyoto. Inside, a simple moss garden planted with maples is framed by the veranda. The temple
has closed for restoration in some years, so check that it is open before you make the trip.</p>

<h3>Shisen-d&#333; and Enk&#333;-ji in Ichij&#333;ji</h3>

<p>The Ichij&#333;ji neighbourhood, on the Eizan line and a short walk up from the station,
has two small temples a few minutes apart. Shisen-d&#333;, the former retreat of a
seventeenth-century poet, has a sloping garden of clipped azaleas and maples and a
<em>shishi-odoshi</em>, the bamboo deer-scarer whose hollow knock punctuates the silence.
Enk&#333;-ji has a pond garden and a moss garden where, in early December, the ground turns
completely red. Combine them with Shinnyo-d&#333; or Rurik&#333;-in for a day in the
north-east.</p>

<h3>Genk&#333;-an in Takagamine</h3>

<p>Genk&#333;-an, in the quiet north-western district of Takagamine, is known for two windows
side by side: a round one, the Window of Enlightenment, and a square one, the Window of
Confusion. In autumn each frames a different view of the maples outside. The temple's ceiling
is made from floorboards of Fushimi Castle, said to bear the marks of the warriors who died
there. It is a sobering, beautiful place, and rarely crowded.</p>

<h2 id="night">Night illuminations</h2>

<p>From mid-November, many temples reopen after dark with their gardens lit from below. The
lights turn the trees into glowing red clouds, and ponds become mirrors. Evening sessions
usually run for about three hours and charge a separate entry fee. The best known are at
Kiyomizu-dera, Eikan-d&#333;, K&#333;dai-ji, Sh&#333;ren-in and the Kitano Tenmang&#363;
shrine's maple garden, which follows a stream along the Odoi, an earthwork built around
Kyoto in the sixteenth century.</p>

<p>Evenings are cold by late November, often just a few degrees above zero once the sun goes
down. Bring a warm layer and expect to stand around. Tripods are generally not allowed in
crowded gardens at night, so raise your camera's ISO and brace against something solid.</p>

<h2 id="table">Quick reference table</h2>

<div class="table-wrap">
<table>
<caption>Kyoto autumn foliage spots at a glance (peak times vary every year)</caption>
<thead>
<tr><th scope="col">Spot</th><th scope="col">Area</th><th scope="col">Typical peak</th>
<th scope="col">Crowds</th><th scope="col">Evening lights</th></tr>
</thead>
<tbody>
<tr><td>Kurama &amp; Kibune</td><td>North</td><td>Early&ndash;mid Nov</td><td>Moderate</td><td>Train only</td></tr>
<tr><td>Sanzen-in, Ohara</td><td>North</td><td>Mid Nov</td><td>Moderate</td><td>No</td></tr>
<tr><td>Rurik&#333;-in</td><td>Northeast</td><td>Mid&ndash;late Nov</td><td>Reservation</td><td>No</td></tr>
<tr><td>Eikan-d&#333;</td><td>Higashiyama</td><td>Late Nov</td><td>Very heavy</td><td>Yes</td></tr>
<tr><td>Nanzen-ji</td><td>Higashiyama</td><td>Late Nov</td><td>Heavy</td><td>No</td></tr>
<tr><td>Shinnyo-d&#333;</td><td>Higashiyama</td><td>Late Nov</td><td>Light</td><td>No</td></tr>
<tr><td>Kiyomizu-dera</td><td>Higashiyama</td><td>Late Nov</td><td>Very heavy</td><td>Yes</td></tr>
<tr><td>Tofuku-ji</td><td>South</td><td>Late Nov</td><td>Extreme</td><td>No</td></tr>
<tr><td>Daigo-ji</td><td>Southeast</td><td>Mid&ndash;late Nov</td><td>Moderate</td><td>Some years</td></tr>
<tr><td>H&#333;gon-in</td><td>Arashiyama</td><td>Late Nov</td><td>Heavy</td><td>Yes</td></tr>
<tr><td>J&#333;jakk&#333;-ji</td><td>Sagano</td><td>Late Nov</td><td>Moderate</td><td>No</td></tr>
<tr><td>Kitano Tenmang&#363;</td><td>Northwest</td><td>Late Nov&ndash;early Dec</td><td>Moderate</td><td>Yes</td></tr>
</tbody>
</table>
</div>

<h2 id="itinerary">A three-day itinerary</h2>

<h3>Day 1: the north</h3>

<p>Take the bus to Ohara in the morning and visit Sanzen-in and H&#333;sen-in before lunch.
Return towards the city and change at Demachiyanagi for the Eizan line. Ride up to Kurama,
climb to the temple, hike over to Kibune, and have a hot-pot dinner by the river. Ride the
train back through the illuminated maple tunnel.</p>

<h3>Day 2: the east</h3>

<p>Start at Kiyomizu-dera at opening time and walk down through Sannenzaka, Ninenzaka and the
Ishibe-k&#333;ji lane to K&#333;dai-ji. Cross Maruyama Park to Sh&#333;ren-in, then continue
to Nanzen-ji for lunch &mdash; the area is famous for <em>yudofu</em>, simmered tofu. Walk the
Philosopher's Path north after lunch, detour to Shinnyo-d&#333;, and come back to Eikan-d&#333;
for its evening illumination.</p>

<h3>Day 3: the south and west</h3>

<p>Be at Tofuku-ji before the gates open. Afterwards, take the train to Arashiyama for
Tenry&#363;-ji, H&#333;gon-in and the Sagano temples, and finish with the boat down the Hozu
river if you reserved the train in the morning instead. Cross the Togetsuky&#333; bridge at
sunset, when the hillside glows.</p>

<h2 id="food">Autumn food</h2>

<p>Autumn is the season of appetite in Japan &mdash; <em>shokuyoku no aki</em> &mdash; and Kyoto
leans into it. Look out for:</p>

<ul>
<li><strong>Chestnuts:</strong> roasted in the street, cooked into rice, or piled on top of
<em>mont blanc</em> cakes in every caf&eacute;.</li>
<li><strong>Matsutake mushrooms:</strong> expensive and intensely fragrant, served in clear
soup or steamed in a small teapot (<em>dobin-mushi</em>).</li>
<li><strong>Yudofu:</strong> tofu simmered in kelp broth, a speciality near Nanzen-ji and in
Arashiyama, and the perfect thing on a cold day.</li>
<li><strong>Momiji manj&#363; and maple-leaf sweets:</strong> Kyoto's confectioners make
seasonal <em>wagashi</em> shaped and coloured like autumn leaves.</li>
<li><strong>Sweet potatoes:</strong> baked sweet potatoes sold from trucks and stalls
(<em>yaki-imo</em>) are autumn street food at its simplest.</li>
</ul>

<p>Popular restaurants near the big temples are fully booked in peak season. Reserve dinner
ahead, and for lunch eat early, at eleven, or late, after two.</p>

<h2 id="rain">If it rains</h2>

<p>A wet day in autumn is not a lost day. Moss gardens are at their most vivid in the rain and
the colours of the leaves deepen against dark, wet bark. Temples with large covered verandas
and halls &mdash; Nanzen-ji's sub-temples, Sh&#333;ren-in, H&#333;sen-in in Ohara, Genk&#333;-an
&mdash; let you sit under a roof and look out at the garden. Tofuku-ji's bridge is covered, too.
Bring a compact umbrella, a plastic bag for your shoes (some temples provide them), and socks
that you do not mind walking around in on cold wooden floors.</p>

<p>If the weather is truly miserable, Kyoto's museums make a good refuge: the Kyoto National
Museum near Sanjusangen-d&#333;, whose hall of a thousand statues is also indoors, and the
Kyoto Railway Museum near the station. Nishiki Market is covered along most of its length and
full of autumn produce, and a long lunch of <em>yudofu</em> is the best possible answer to a
cold, wet afternoon.</p>

<h2 id="tips">Crowds, transport and photography</h2>

<h3>Beating the crowds</h3>

<p>The single most useful thing you can do is start early. Most temples open between 8:00 and
9:00, and the first hour is a different world from the middle of the day. Weekdays are much
calmer than weekends, and the three-day weekend around Labour Thanksgiving Day (23 November)
is the busiest time of the whole year. Rain clears the crowds and makes the colours richer; an
umbrella is your friend.</p>

<h3>Getting around</h3>

<p>Kyoto's buses are famously overloaded in autumn. Where you can, use trains and the subway:
the Keihan line for Tofuku-ji and Fushimi, the Tozai subway line for Daigo-ji and Keage, the
JR Sagano line or the Randen tram for Arashiyama, and the Eizan line for the north. Walking
between nearby temples is often faster than any bus. Taxis are plentiful but get stuck in the
same traffic. An IC card such as ICOCA or Suica works on almost everything.</p>

<h3>Photography</h3>

<p>Backlit maples are the classic shot: stand with the sun behind the leaves and they light up
like stained glass. Overcast days are better for gardens and moss, when harsh shadows
disappear. Be considerate: do not block paths, stay off the moss, and follow the signs when a
temple asks you not to photograph a particular hall or garden. Drones are banned almost
everywhere in the city.</p>

<h3>Where to stay</h3>

<p>Staying near Kyoto Station gives you the best transport links, while Higashiyama and the area
around Sanj&#333; put you within walking distance of the eastern temples and the evening
illuminations. Hotels fill up months ahead for late November, and prices rise accordingly;
staying in Osaka and commuting (about 15 minutes by shinkansen or 30&ndash;45 by local train)
is a sensible fallback.</p>

<h3>What it costs</h3>

<p>Entry to most temples costs between a few hundred and a thousand yen, and the special autumn
openings and evening illuminations are charged separately, so a day of temple-hopping can add
up. Many smaller temples accept cash only: carry coins and small notes. Some of the loveliest
places &mdash; the grounds of Nanzen-ji, H&#333;nen-in, the lanes of Higashiyama and the banks
of the Kamo river &mdash; are free.</p>

<h3>What to pack</h3>

<ul>
<li>Comfortable shoes that slip on and off easily, and warm socks for cold temple floors.</li>
<li>A light down jacket or fleece for mornings and illuminations.</li>
<li>A compact umbrella, a small towel, and a bag for your shoes.</li>
<li>A coin purse: many temples, shrines and small shops do not take cards.</li>
<li>A portable battery &mdash; maps, translation and photos drain phones quickly.</li>
</ul>

<h3>Adding Nara</h3>

<p>Nara is under an hour from Kyoto by train and colours at about the same time. The maples and
ginkgo trees around T&#333;dai-ji and in the Isuien and Yoshikien gardens are beautiful, the
deer in Nara Park are as bold as ever, and the crowds are lighter than in Kyoto's most famous
temples. It makes a good day off from Kyoto in the middle of a longer stay.</p>

<h2 id="faq">Frequently asked questions</h2>

<dl class="faq">
<dt>Is it worth visiting Kyoto in autumn despite the crowds?</dt>
<dd>Yes. The crowds concentrate in perhaps a dozen famous places at the same few hours. Start
early, visit the big names first, and spend the afternoon in smaller temples and you will have
long stretches almost to yourself.</dd>
<dt>Do I need to reserve temples?</dt>
<dd>Most temples do not take reservations, but a few with limited space, such as
Rurik&#333;-in, increasingly require them in peak season. Check each temple's website before you
go.</dd>
<dt>What should I wear?</dt>
<dd>Layers. Days can still be mild, but mornings and evenings are cold. Wear shoes that are easy
to take off: you remove them to enter most temple halls.</dd>
<dt>Can I see autumn leaves in Kyoto in October?</dt>
<dd>Only in the mountains. In the city, October is still green, although the weather is
wonderful for walking. If your trip is in October, head for the high country &mdash; the Japanese
Alps, Nikk&#333; or Hokkaido &mdash; where the season peaks earlier.</dd>
<dt>Is a rail pass worth it for Kyoto?</dt>
<dd>Not for getting around the city itself, where most trips cost a few hundred yen. A
day pass for the subway and buses can save money on busy days, and an IC card saves time
everywhere.</dd>
<dt>Is the colour better in the morning or the afternoon?</dt>
<dd>Morning light on the eastern hills and afternoon light in Arashiyama are usually best,
because of the way the slopes face the sun.</dd>
</dl>

<p>Kyoto in autumn is crowded, expensive and a little exhausting. It is also one of the most
beautiful things we have seen anywhere, and we keep going back. We hope this guide helps you
find your own quiet corner among the maples.</p>

<p>If you have questions, or a favourite autumn garden we have not mentioned, we would love to
hear from you. We update this guide every year after the season, with notes on what has changed:
new reservation systems, closures for restoration and the best of the year's illuminations.</p>
"""

ONSEN_ETIQUETTE = """
<p class="lead">Soaking in a hot spring is one of the great pleasures of travelling in Japan.
It can also be slightly intimidating the first time. The rules are few and simple, and once you
know them you will wonder why you ever worried.</p>

<h2>Before you get in</h2>

<p>Most onsen and public baths (<em>sent&#333;</em>) are separated by gender. Look for the
noren curtains at the entrance: red, often marked &#22899;, for women; blue, often marked
&#30007;, for men. Some inns swap the baths between morning and evening so that guests can
try both, so check the curtain every time.</p>

<p>In the changing room, put everything you are wearing into a basket or locker. Yes,
everything: swimsuits are not worn in traditional baths. You take only a small towel with you
into the bathing area.</p>

<!-- ad-slot -->

<h2>Wash first, soak second</h2>

<p>This is the one rule that really matters. The bath is for soaking, not washing. Sit on one
of the small stools at the washing stations, and wash and rinse yourself thoroughly with the
shower and the soap provided. Rinse off all the suds before you stand up, and leave the
station tidy for the next person.</p>

<h2>In the water</h2>

<ul>
<li>Lower yourself in slowly. Many springs are 40&ndash;44&nbsp;&deg;C.</li>
<li>Keep your towel out of the water. Folding it on your head is traditional and practical.</li>
<li>Tie up long hair so that it does not touch the water.</li>
<li>No swimming, splashing or diving. Keep your voice low.</li>
<li>Do not stay in too long on your first visit; get out and cool down if you feel dizzy.</li>
</ul>

<h2>Tattoos</h2>

<p>Many onsen still refuse entry to people with tattoos, a policy rooted in their association
with organised crime. Attitudes are changing, and more places now accept small tattoos covered
by a skin-coloured patch, or welcome everyone. Private baths (<em>kashikiri</em>), which you
can book by the hour at many inns, avoid the question entirely.</p>

<h2>Afterwards</h2>

<p>Dry yourself off with your small towel before you go back into the changing room, so you do
not drip on the floor. Then drink plenty of water &mdash; or, as tradition demands, a cold
bottle of milk from the vending machine by the exit.</p>
"""

TOKYO_TRAINS = """
<p class="lead">Tokyo has the busiest and arguably the best rail network in the world. With
over a dozen operators and hundreds of stations, the map looks like a plate of spaghetti. In
practice, a handful of tips will get you anywhere.</p>

<h2>Get an IC card</h2>

<p>Suica and PASMO are rechargeable smart cards that work on every train, subway and bus in
the city, and in most other Japanese cities too. Tap in, tap out, and the fare is deducted
automatically. You can also add one to a phone's wallet app. Paper tickets still exist, but
after your first day you will never want to work out a fare from the chart above the ticket
machines again.</p>

<h2>The Yamanote line is your friend</h2>

<p>The green JR Yamanote line runs in a loop around central Tokyo, connecting Shinjuku,
Shibuya, Harajuku, Tokyo Station, Akihabara, Ueno and Ikebukuro. Trains come every few minutes.
If you are lost, get to the Yamanote line and start again.</p>

<!-- ad-slot -->

<h2>Rush hour is real</h2>

<p>Between about 7:30 and 9:30 on weekday mornings, trains into the centre are packed beyond
anything you have experienced. If you have luggage, travel outside these hours. Many lines have
women-only carriages during the morning rush; look for the pink signs on the platform.</p>

<h2>Etiquette</h2>

<ul>
<li>Queue at the marked spots on the platform and let passengers off first.</li>
<li>Talk quietly and put your phone on silent mode. Do not take calls on the train.</li>
<li>Wear backpacks on your front or put them on the rack when it is crowded.</li>
<li>Priority seats near the doors are for elderly, pregnant and disabled passengers.</li>
<li>Eating on commuter trains is frowned upon; shinkansen and limited express trains are fine.</li>
</ul>

<h2>Last trains</h2>

<p>Tokyo's trains stop running around midnight and start again around five. If you miss the
last train, your options are a taxi, a manga caf&eacute;, or a karaoke box until morning. All
three are, in their own way, a Tokyo experience.</p>
"""

HAKONE_DAY_TRIP = """
<p class="lead">Hakone is the classic escape from Tokyo: hot springs, a volcanic valley,
a lake with a view of Mount Fuji on a clear day, and a loop of mountain railway, cable car,
ropeway and boat that turns the journey into half the fun.</p>

<h2>Getting there</h2>

<p>Odakyu's Romancecar limited express runs from Shinjuku to Hakone-Yumoto in about 90
minutes. The Hakone Free Pass covers the return trip from Shinjuku plus almost all transport
inside the area, and pays for itself if you do the full loop.</p>

<!-- ad-slot -->

<h2>The Hakone loop</h2>

<ol>
<li>Ride the <strong>Hakone Tozan railway</strong> up the mountain from Hakone-Yumoto. It is
one of the steepest railways in Japan and climbs by switchbacks; in June the tracks are lined
with hydrangeas.</li>
<li>At G&#333;ra, change to the <strong>cable car</strong> up to S&#333;unzan.</li>
<li>Take the <strong>ropeway</strong> over the steaming vents of &#332;wakudani. Try the
famous black eggs, boiled in the sulphurous springs and said to add seven years to your
life.</li>
<li>Continue down to Lake Ashi and cross it on a <strong>sightseeing boat</strong> styled as a
pirate ship. Watch for Fuji over the hills.</li>
<li>Walk from Moto-Hakone along the old Tokaido highway, under huge cedar trees, to the
lakeside <strong>Hakone Shrine</strong> with its red torii standing in the water.</li>
</ol>

<h2>Video: riding the loop</h2>

<p>A short video gives a feel for the trip. (The player is loaded from YouTube, so it is only
shown if you allow social media features.)</p>

<div class="video">
<iframe width="560" height="315" src="https://www.youtube.com/embed/M7lc1UVf-VE" title="YouTube video player" style="border:0" allow="accelerometer; autoplay; clipboard-write; encrypted-media; gyroscope; picture-in-picture; web-share" referrerpolicy="strict-origin-when-cross-origin" allowfullscreen></iframe>
</div>

<h2>Where to soak</h2>

<p>Hakone has dozens of day-use baths. Tenzan, a short bus ride from Hakone-Yumoto, has large
outdoor pools in the forest. If you stay overnight, a ryokan with its own spring and a
multi-course kaiseki dinner is the way to do it properly. See our
<a href="/articles/onsen-etiquette">onsen etiquette guide</a> before you go.</p>

<h2>When to go</h2>

<p>Fuji is most often visible in winter, on cold, dry mornings. Autumn colours arrive in early
to mid November, a couple of weeks ahead of Kyoto. Avoid Japanese public holidays if you can:
the loop gets very busy and queues for the ropeway can be long.</p>
"""

ARTICLES: tuple[Article, ...] = (
    Article(
        slug="kyoto-autumn",
        title="Kyoto in Autumn: A Complete Guide to the Maple Season",
        date="2024-10-28",
        summary=(
            "When the leaves turn, where to see them, how to dodge the crowds at Tofuku-ji "
            "and Eikan-do, night illuminations, a three-day itinerary and what to eat."
        ),
        label="Kyoto",
        caption="momiji &middot; autumn leaves",
        hue=8,
        tags=("Kyoto", "Autumn", "Temples"),
        body=KYOTO_AUTUMN,
    ),
    Article(
        slug="onsen-etiquette",
        title="Onsen Etiquette: How to Enjoy a Japanese Hot Spring",
        date="2024-09-14",
        summary=(
            "Wash first, towel on your head, no swimsuits: the few simple rules of Japanese "
            "hot springs, plus what to do about tattoos."
        ),
        label="Onsen",
        caption="hot springs",
        hue=200,
        tags=("Onsen", "Culture"),
        body=ONSEN_ETIQUETTE,
    ),
    Article(
        slug="tokyo-trains",
        title="Tokyo Trains for Beginners",
        date="2024-08-02",
        summary=(
            "IC cards, the Yamanote loop, surviving rush hour and the unwritten rules of "
            "riding the world's busiest rail network."
        ),
        label="Tokyo",
        caption="densha &middot; trains",
        hue=140,
        tags=("Tokyo", "Transport"),
        body=TOKYO_TRAINS,
    ),
    Article(
        slug="hakone-day-trip",
        title="A Day Trip to Hakone from Tokyo",
        date="2024-06-19",
        summary=(
            "Mountain railway, ropeway over a volcanic valley, a pirate ship on Lake Ashi "
            "and, if you are lucky, a view of Mount Fuji."
        ),
        label="Hakone",
        caption="day trip from Tokyo",
        hue=265,
        tags=("Hakone", "Day trips", "Onsen"),
        body=HAKONE_DAY_TRIP,
        has_video=True,
    ),
)

BY_SLUG: dict[str, Article] = {a.slug: a for a in ARTICLES}
