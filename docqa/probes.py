"""Question/passage pairs on everyday topics, for measuring what "unrelated" means to an
embedding model (``docqa.dense.Embedder.unrelated_ceiling``).

Each question is answered by its own passage and by none of the others, so pairing a question
with another pair's passage gives a question and a text that are not about the same thing.
How similar a model finds such pairs is the model's own scale for "unrelated": a question whose
closest indexed passage is no closer than that is not about anything in the collection.
The topics are spread wide (cooking, sport, science, health, art, household, money) so that
no two pairs share a subject.
"""

from __future__ import annotations

PAIRS: tuple[tuple[str, str], ...] = (
    ('How long should pasta boil?',
     'Cook dried spaghetti in salted boiling water for eight to ten minutes, until it is tender but still firm to the bite.'),
    ('What temperature does water freeze at?',
     'At sea level pure water turns to ice at zero degrees Celsius, which is thirty-two degrees Fahrenheit.'),
    ('How do I change a flat tyre?',
     'Loosen the wheel nuts, raise the car with the jack, remove the wheel and fit the spare before tightening the nuts again.'),
    ('When should tomatoes be planted?',
     'Set tomato seedlings outdoors after the last spring frost, once the soil has warmed and nights stay mild.'),
    ('How many players are on a football team?',
     'Each side fields eleven players, one of whom is the goalkeeper, and a team may make a limited number of substitutions.'),
    ('What causes the seasons?',
     "The tilt of the Earth's axis means each hemisphere receives more direct sunlight for part of the year, giving summer and winter."),
    ('How often should I water a cactus?',
     'Cacti store water in their stems, so in summer water them every two or three weeks and far less in winter.'),
    ('Who painted the Mona Lisa?',
     'Leonardo da Vinci worked on the portrait of Lisa Gherardini in Florence in the early sixteenth century.'),
    ('How do vaccines work?',
     'A vaccine exposes the immune system to a harmless part of a germ so that the body learns to recognise and fight it later.'),
    ('What is the fastest land animal?',
     'The cheetah can sprint at more than a hundred kilometres an hour over short distances while chasing prey.'),
    ('How do I reset my router?',
     'Hold the small reset button on the back of the router for ten seconds until the lights flash, then set it up again.'),
    ('What is inflation?',
     'Inflation is the rate at which the general level of prices rises, so each unit of money buys fewer goods and services.'),
    ('Why is the sky blue?',
     'Air molecules scatter short blue wavelengths of sunlight much more strongly than red ones, so the sky looks blue.'),
    ('How much sleep do adults need?',
     'Most adults function best with seven to nine hours of sleep a night, according to health guidelines.'),
    ('What language is spoken in Brazil?',
     'Portuguese is the official and most widely spoken language of Brazil, a legacy of colonisation.'),
    ('How do bees make honey?',
     'Worker bees collect nectar, break down its sugars with enzymes and fan it in the comb until the water evaporates.'),
    ('What is the tallest mountain?',
     'Mount Everest in the Himalayas rises to about 8,849 metres above sea level, the highest peak on Earth.'),
    ('How do I remove a coffee stain?',
     'Blot the stain, rinse it from the back with cold water, then work in a little liquid detergent before washing.'),
    ('When did the first person walk on the Moon?',
     'Neil Armstrong stepped onto the lunar surface in July 1969 during the Apollo 11 mission.'),
    ('How does a refrigerator keep food cold?',
     'A refrigerant absorbs heat inside the cabinet as it evaporates and releases it outside when the compressor condenses it.'),
    ('What is photosynthesis?',
     'Plants use light energy to turn carbon dioxide and water into sugar, releasing oxygen as a by-product.'),
    ('How many strings does a violin have?',
     'A violin has four strings, tuned in fifths to G, D, A and E, and is played with a bow.'),
    ('What should I pack for a beach holiday?',
     'Bring sunscreen, a hat, swimwear, a towel and plenty of water when spending the day on the beach.'),
    ('How do I train a puppy to sit?',
     "Hold a treat above the puppy's nose and move it back; as its bottom touches the floor say sit and reward it."),
    ('What is the currency of Japan?',
     "Japan's currency is the yen, issued by the Bank of Japan and written with the symbol ¥."),
    ('How does compound interest work?',
     'Interest is added to the principal, so later interest is earned on both the original sum and the interest already paid.'),
    ('Why do cats purr?',
     'Cats purr when content but also when stressed or injured; the vibration may help them calm down and heal.'),
    ('How fast does light travel?',
     'Light moves through a vacuum at almost three hundred thousand kilometres per second.'),
    ('What is a haiku?',
     'A haiku is a short Japanese poem of three lines with five, seven and five syllables, often about nature.'),
    ('How can I lower my blood pressure?',
     'Eating less salt, exercising regularly, keeping a healthy weight and limiting alcohol all help reduce blood pressure.'),
    ('Who wrote Romeo and Juliet?',
     'William Shakespeare wrote the tragedy of the two young lovers from feuding families in Verona in the 1590s.'),
    ('How do I make a cup of tea?',
     'Pour freshly boiled water over a tea bag, let it steep for three to five minutes, then add milk if you like.'),
)
