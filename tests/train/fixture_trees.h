/* fixture_trees: the training data of the train tests, two trees of `aloe
 * dialogues` (three turns: SFT takes one example per turn, the history
 * along the branch taken; DPO one pair per turn). */
#ifndef ALOE_TESTS_TRAIN_FIXTURE_TREES_H
#define ALOE_TESTS_TRAIN_FIXTURE_TREES_H

static const char *TREES =
    "{\"profile\": \"P\", \"personality\": \"Q\", \"conversations\": ["
    "{\"user\": \"Hi! I just finished my anthropology exam.\", \"assistant\": {\"preferred\": \"Congrats! How did it "
    "go?\", \"rejected\": \"OK.\"}, \"chosen\": \"rejected\"},"
    "{\"user\": \"It went well. Now I want to play guitar all summer.\", \"assistant\": {\"preferred\": \"Nice, what "
    "songs are you learning?\", \"rejected\": \"Guitars have strings.\"}, \"chosen\": \"preferred\"}]}\n"
    "{\"profile\": \"P2\", \"personality\": \"Q2\", \"conversations\": [{\"user\": \"I love indie films.\", "
    "\"assistant\": {\"preferred\": \"Which one did you watch last?\", \"rejected\": \"Films are movies.\"}, "
    "\"chosen\": \"preferred\"}]}\n";

#endif
